"""Which language a battle's prompt is in, for the leaderboard's language filter.

py3langid (langid.py's model, deterministic) with normalised probabilities, limited to the
widely used languages below: on prompts of a few words the full model's long tail (Cantonese
for written Chinese, Hungarian for "ok ok") does more harm than good. A prompt too short or too
mixed to tell is ``und`` (undetermined, ISO 639-2) rather than a guess.
"""

from __future__ import annotations

import threading
from typing import Any

UNDETERMINED = "und"
MIN_CONFIDENCE = 0.5
LANGUAGES = (  # noqa: SIM905 (a list of 31 two-letter codes reads better as one line)
    "ar bn cs da de el en es fa fi fr he hi hu id it ja ko ms nl no pl pt ro ru sv th tr uk vi zh"
).split()
MIN_LETTERS = 3
MAX_CHARS = 2000  # the start of a long prompt says as much as all of it

_lock = threading.Lock()
_identifier: Any = None


def _model() -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
            identifier.set_languages(LANGUAGES)
            _identifier = identifier
        return _identifier


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language (``zh``, ``en``, …) or ``und``."""
    sample = text[:MAX_CHARS]
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return UNDETERMINED
    code, confidence = _model().classify(sample)
    return str(code) if float(confidence) >= MIN_CONFIDENCE else UNDETERMINED
