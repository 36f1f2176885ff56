"""Listening tests of explanations: build a blind test from runs' examples, serve it in the
browser, analyse the answers (recipes/listening_test.py)."""
