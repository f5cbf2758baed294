"""Test-session settings: Lark's parser cache (``potentials._lark_cache``) goes to a fresh
folder per session, so that the many grammars the tests build leave nothing in the
user's cache and every first build of a grammar is cold."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_folder = tempfile.mkdtemp(prefix="smc-decode-test-grammars.")
atexit.register(shutil.rmtree, _folder, True)
os.environ["SMC_DECODE_GRAMMAR_CACHE"] = _folder
