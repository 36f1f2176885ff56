"""The listening room: an interactive explainer in the browser (recipes/app.py) and listening
tests anyone can build, run and analyse (recipes/listening_test.py)."""
