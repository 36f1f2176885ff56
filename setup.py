"""Listenable interpreters for audio classifiers: a SpeechBrain recipe collection."""

from setuptools import find_packages, setup

setup(
    name="interpreters",
    version="0.1.0",
    description="Listenable, faithful explanations for audio classifiers (SpeechBrain recipes)",
    packages=find_packages(include=["interpreters", "interpreters.*"]),
    python_requires=">=3.10",
    install_requires=[
        line.strip()
        for line in open("requirements.txt")
        if line.strip() and not line.startswith("#")
    ],
)
