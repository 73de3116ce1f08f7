"""Where the headless browser is, for the browser tour and `make screenshots` (Debian's chromium package)."""

import shutil

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium():
    """The path of the first Chromium on PATH, or None."""
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
