"""The app database secret's rotation function (function.py) and its Lambda bundle (bundle.py)."""
