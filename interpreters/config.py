"""Yaml is the experiment: loading recipe yamls with one-line errors, shared includes and bases.

Three conveniences on top of HyperPyYAML, all explicit in the yaml:
- ``key: !include:data.yaml`` pulls in a shared section (hparams/data.yaml); command-line
  overrides of its keys (``--dataset=esc50``) are routed into it, so every key of the included
  file can be overridden as if it were written in the recipe.
- ``base_hparams: lmac_td.yaml`` makes a file an override file of another (paper-scale settings
  as a few lines over the CPU default); the command line still wins.
- Dotted names that moved when the package was reorganised are translated, so yaml written by
  earlier versions (exported folders, trained runs) still loads.
"""

from __future__ import annotations

import difflib
import io
from pathlib import Path

import ruamel.yaml
import yaml
from hyperpyyaml import load_hyperpyyaml

from interpreters.errors import InterpreterError, first_line

BASE_KEY = "base_hparams"
INCLUDE_TAG = "!include:"

LEGACY_NAMES = {
    "interpreters.classifiers.training.ClassifierBrain": (
        "interpreters.training.classifier.ClassifierBrain"
    ),
    "interpreters.classifiers.clap.ClapBrain": "interpreters.training.clap.ClapBrain",
    "interpreters.classifiers.": "interpreters.models.",
    "interpreters.sources.load_classifier": "interpreters.models.loading.load_classifier",
    "interpreters.methods.lmac.LMAC\n": "interpreters.training.lmac.LMACBrain\n",
    "interpreters.methods.l2i.L2I\n": "interpreters.training.l2i.L2IBrain\n",
    "interpreters.methods.nmf.NMFBrain": "interpreters.training.nmf.NMFBrain",
    "interpreters.methods.lmac_td.LMACTD\n": "interpreters.training.lmac_td.LMACTDBrain\n",
    "interpreters.methods.lmac_zs.LMACZS\n": "interpreters.training.lmac_zs.LMACZSBrain\n",
    "interpreters.methods.baselines.choose": "interpreters.explainers.base.choose",
    "interpreters.methods.": "interpreters.explainers.",
}


class _NamedText(io.StringIO):
    """Yaml text that remembers its file, so HyperPyYAML resolves includes next to it."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def modern_names(text: str) -> str:
    """Yaml text with the package's old dotted names replaced by today's."""
    for old, new in LEGACY_NAMES.items():
        text = text.replace(old, new)
    return text


def parse_overrides(overrides: str | dict | None) -> dict:
    """Command-line overrides (SpeechBrain gives a yaml string) as a dict."""
    if not overrides:
        return {}
    if isinstance(overrides, str):
        return yaml.safe_load(overrides) or {}
    return dict(overrides)


def load_yaml(path: str | Path, overrides: str | dict | None = None) -> dict:
    """Load a yaml file with its includes, base file and overrides; a missing file or an
    override naming no key is one line."""
    path = Path(path)
    if not path.is_file():
        raise InterpreterError(f"hparams file {path} does not exist; pick one from hparams/")
    text, overrides = resolve_base(path, parse_overrides(overrides))
    tree = ruamel.yaml.YAML().load(text) or {}
    text, overrides = route_include_overrides(text, tree, overrides, path)
    unknown = [key for key in overrides if key not in tree]
    if unknown:
        raise InterpreterError(unknown_key_message(path, unknown[0], tree))
    check_override_types(path, tree, overrides)
    try:
        return load_hyperpyyaml(_NamedText(text, str(path.resolve())), overrides)
    except KeyError as err:  # a reference to a key that does not exist
        raise InterpreterError(f"{path}: {str(err).strip(chr(39))}; fix the reference") from None


def resolve_base(path: Path, overrides: dict) -> tuple[str, dict]:
    """The text to load and the overrides to apply: for an override file (``base_hparams``),
    its base's text and its own keys as overrides under the command line's."""
    text = modern_names(path.read_text())
    own = plain_yaml(text) if f"\n{BASE_KEY}:" in f"\n{text}" else None
    if not isinstance(own, dict) or BASE_KEY not in own:
        return text, overrides
    base = path.parent / str(own.pop(BASE_KEY))
    if not base.is_file():
        raise InterpreterError(f"{path}: {BASE_KEY} {base} does not exist; fix the path")
    base_text, base_overrides = resolve_base(base, {})
    return base_text, {**base_overrides, **own, **overrides}


def plain_yaml(text: str):
    """An override file's plain keys and values (no HyperPyYAML tags in such files)."""
    try:
        return ruamel.yaml.YAML(typ="safe", pure=True).load(text)
    except ruamel.yaml.YAMLError as err:
        raise InterpreterError(
            f"an override file ({BASE_KEY}) holds plain values only: {first_line(err)}"
        ) from None


def route_include_overrides(text: str, tree, overrides: dict, path: Path) -> tuple[str, dict]:
    """Overrides naming a key of an included file move into that include's mapping."""
    includes = {
        key: node for key, node in tree.items() if str(tag_of(node)).startswith(INCLUDE_TAG)
    }
    if not includes or not overrides:
        return text, overrides
    if any(key in overrides and not isinstance(overrides[key], dict) for key in includes):
        key = next(k for k in includes if k in overrides and not isinstance(overrides[k], dict))
        raise InterpreterError(f"{path}: override {key} must be a mapping (it is a section)")
    rest = dict(overrides)
    for key, node in includes.items():
        if key in rest:  # the whole section given: it replaces the include
            tree[key] = ruamel.yaml.comments.CommentedMap(rest.pop(key))
            continue
        included = path.parent / str(tag_of(node))[len(INCLUDE_TAG) :]
        defaults = ruamel.yaml.YAML().load(included.read_text()) or {}
        routed = {k: rest.pop(k) for k in list(rest) if k in defaults and k not in tree}
        check_override_types(included, defaults, routed)
        if routed:
            given = dict(node) if hasattr(node, "items") else {}
            mapping = ruamel.yaml.comments.CommentedMap({**given, **routed})
            mapping.yaml_set_ctag(node.tag)
            tree[key] = mapping
    stream = io.StringIO()
    ruamel.yaml.YAML().dump(tree, stream)
    return stream.getvalue(), rest


def check_override_types(path: Path, tree, overrides: dict) -> None:
    """An override whose value cannot stand for the yaml's plain number or flag (``batch_size:
    abc``) is one line naming the key, before anything is built."""
    for key, value in overrides.items():
        default = tree.get(key)
        if value is None:  # null switches a number off (e.g. ``limit: null``)
            continue
        if isinstance(default, bool):
            wanted, fits = "true or false", isinstance(value, bool)
        elif isinstance(default, int):
            wanted, fits = "an integer", isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            wanted = "a number"
            fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            continue
        if not fits:
            raise InterpreterError(
                f"{path}: '{key}' must be {wanted} (the yaml has {default}), not {value!r}; "
                "fix the value"
            )


def tag_of(node) -> str:
    """The tag of a ruamel node ('' when untagged)."""
    tag = getattr(node, "tag", None)
    return (getattr(tag, "value", None) or "") if tag is not None else ""


def unknown_key_message(path: Path, key: str, tree) -> str:
    """One line for an override that names no key of the yaml (nor of its includes)."""
    close = difflib.get_close_matches(key, list(tree), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"{path}: '{key}' is not a key of this yaml{hint}; check its spelling against the file"


def check_hparams(hparams: dict, required: list[str], where: str) -> None:
    """One-line error for a missing yaml key, with the closest existing keys as a hint."""
    for key in required:
        if key not in hparams:
            close = difflib.get_close_matches(key, list(hparams), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InterpreterError(f"{where}: yaml key '{key}' is missing{hint}; add it")


def check_choice(hparams: dict, key: str, options: tuple[str, ...]) -> None:
    """One-line error for a yaml key whose value is not one of ``options``."""
    value = hparams[key]
    if value not in options:
        raise InterpreterError(f"yaml key {key} is {value!r}; use {' or '.join(options)}")


def pop_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """Take ``--name=value`` (or ``--name value``) out of the command line: an option of the
    run itself rather than a yaml key, so it works with any recipe yaml."""
    rest, value, args = [], None, iter(argv)
    for arg in args:
        if arg == f"--{name}":
            value = next(args, None)
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, value


def included_files(path: str | Path) -> list[Path]:
    """The files a yaml pulls in (includes and its base, recursively), so copies of a run or an
    export keep them next to it."""
    path = Path(path)
    text = path.read_text()
    found = []
    own = plain_yaml(text) if f"\n{BASE_KEY}:" in f"\n{text}" else None
    if isinstance(own, dict) and BASE_KEY in own:
        base = path.parent / str(own[BASE_KEY])
        found += [base, *included_files(base)]
    for line in text.splitlines():
        if INCLUDE_TAG in line and not line.lstrip().startswith("#"):
            name = line.split(INCLUDE_TAG, 1)[1].split()[0]
            found += [path.parent / name, *included_files(path.parent / name)]
    return found


def resolved_yaml(path: str | Path, overrides: str | dict | None = None) -> str:
    """The yaml with its includes, base and overrides applied and references resolved, as
    text: what a run folder keeps as hyperparams.yaml for a person to read."""
    from hyperpyyaml import resolve_references

    path = Path(path)
    text, overrides = resolve_base(path, parse_overrides(overrides))
    tree = ruamel.yaml.YAML().load(text) or {}
    text, overrides = route_include_overrides(text, tree, overrides, path)
    return resolve_references(_NamedText(text, str(path.resolve())), overrides).getvalue()


def copy_with_includes(path: str | Path, folder: str | Path, name: str) -> list[str]:
    """Copy a yaml into ``folder`` as ``name``, with the files it includes next to it (same
    relative names); the names of the included files written."""
    import shutil

    path, folder = Path(path), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(path.read_text())
    written = []
    for included in included_files(path):
        relative = included.relative_to(path.parent)
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(included, folder / relative)
        written.append(str(relative))
    return written


def top_level_keys(path: str | Path) -> set[str]:
    """The keys a yaml file defines at its top level (nothing is built)."""
    tree = ruamel.yaml.YAML().load(modern_names(Path(path).read_text())) or {}
    return set(tree)
