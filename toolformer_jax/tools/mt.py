"""MT: translation into English with Debian's apertium, after language identification.

`MT("¿Dónde está la biblioteca?")` -> `Where it is the library?`. English input is
returned unchanged.

Language identification uses py3langid's bundled model (no download); the probabilities
of `language_aliases` (regional varieties such as Extremaduran, which it confuses with
Spanish on short text) are added to their main language first. Then:
  * if its best guess over all its languages is an unsupported language with probability
    >= `unsupported_confidence`, the call fails with "language xx is not supported";
  * otherwise the best supported language (or English) wins if its probability, renormalised
    over the supported languages and English, is >= `min_confidence`;
  * otherwise, for a text of at most `dictionary_max_words` words (language id is weak on
    one or two words, e.g. "tortuga"), the `dictionary_candidates` most likely languages
    are each tried with apertium and the one whose dictionaries know the most words wins
    (English is checked with apertium's English analyser, mode eng-spa);
  * a longer text that stays ambiguous fails with "cannot identify the language" (real
    prose of that length is identified confidently; this is mixed or garbled text).

Pipelines (apertium mode names; Debian packages in toolformer_jax.assets.APT_PACKAGES): es
spa-eng, ca cat-eng, gl gl-en, eu eu-en, fr fr-es then spa-eng. Apertium runs as a
subprocess with a fixed argument vector, no shell, the text on stdin and a timeout: model
output chooses only the text. Unknown-word marks (*, @, #) are removed from the output.
Many calls can share one apertium run per language (`call_batch`): one line per input.
"""
from __future__ import annotations

import concurrent.futures
import contextvars
import os
import re
import shutil
import subprocess
import threading
import unicodedata
from typing import Dict, Hashable, List, Mapping, Optional, Sequence, Tuple, Union

import gin
from py3langid import langid

from toolformer_jax import assets
from toolformer_jax.tools import base
from toolformer_jax.tools import call_format

DEFAULT_PIPELINES: Mapping[str, Tuple[str, ...]] = {
    "es": ("spa-eng",),
    "ca": ("cat-eng",),
    "gl": ("gl-en",),
    "eu": ("eu-en",),
    "fr": ("fr-es", "spa-eng"),
}
ENGLISH_ANALYSER_MODE = "eng-spa"
# Regional varieties py3langid often reports for short Spanish text; counted as Spanish.
DEFAULT_LANGUAGE_ALIASES: Mapping[str, str] = {"ext": "es", "an": "es", "ast": "es"}

_BATCH_SEPARATOR = "\n.\n"
_MARK_RE = re.compile(r"(?<![\w*#@])[*#@](?=\w)")
_WORD_RE = re.compile(r"\w+")
_UNKNOWN_RE = re.compile(r"(?<![\w*#@])[*#@]\w")

# Threads for a batch's parallel apertium runs, one per language (each waits on a process).
_RUNNERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="apertium")
_IDENTIFIER = None
_IDENTIFIER_LOCK = threading.Lock()


def _identifier() -> langid.LanguageIdentifier:
  global _IDENTIFIER
  with _IDENTIFIER_LOCK:
    if _IDENTIFIER is None:
      _IDENTIFIER = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE,
                                                              norm_probs=True)
    return _IDENTIFIER


def identify_language(text: str) -> str:
  """py3langid's language code for `text` (e.g. 'en', 'es')."""
  return _identifier().classify(text)[0]


def clean_text(text: str) -> str:
  """One line: control characters (NUL, newlines, ...) become spaces; spaces collapse."""
  text = "".join(" " if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") else c
                 for c in text)
  return " ".join(text.split())


class _ApertiumFailed(base.ToolError):
  pass


@gin.configurable(module="toolformer_jax.tools")
class MT(base.Tool):
  """Machine translation of supported languages into English (apertium)."""

  name = "MT"
  example = 'MT("¿Dónde está la biblioteca?")'
  description = "translates es, ca, gl, eu or fr text into English (apertium)"

  def __init__(self, pipelines: Optional[Mapping[str, Sequence[str]]] = None,
               apertium_binary: str = "apertium", timeout_s: float = 10.0,
               max_chars: int = 1000, unsupported_confidence: float = 0.5,
               min_confidence: float = 0.6, dictionary_candidates: int = 3,
               dictionary_max_words: int = 4, batch_size: int = 1024,
               batch_timeout_s: float = 60.0,
               language_aliases: Optional[Mapping[str, str]] = None):
    binary = shutil.which(apertium_binary)
    if binary is None:
      raise base.ToolUnavailable(
          f"MT needs Debian's apertium ({apertium_binary!r} not found on PATH); "
          f"install it with: {assets.APT_INSTALL_HINT}")
    self.binary = os.path.realpath(binary)
    self.allowed_executables = (self.binary,)
    self.pipelines = {k: tuple(v) for k, v in (pipelines or DEFAULT_PIPELINES).items()}
    self.timeout_s = timeout_s
    self.max_chars = max_chars
    self.max_args_chars = max_chars + 16
    self.unsupported_confidence = unsupported_confidence
    self.min_confidence = min_confidence
    self.dictionary_candidates = dictionary_candidates
    self.dictionary_max_words = dictionary_max_words
    self.language_aliases = dict(DEFAULT_LANGUAGE_ALIASES if language_aliases is None
                                 else language_aliases)
    self.batch_size = batch_size
    # Engine limit for one batch: up to len(pipelines) + 2 apertium runs, in parallel.
    self.default_timeout_s = batch_timeout_s
    modes = self._installed_modes()
    needed = {m for p in self.pipelines.values() for m in p} | {ENGLISH_ANALYSER_MODE}
    missing = sorted(needed - modes)
    if missing:
      raise base.ToolUnavailable(
          f"apertium modes {missing} are not installed; install them with: "
          f"{assets.APT_INSTALL_HINT}")
    self.identifier = _identifier()
    unknown = set(self.pipelines) - set(self.identifier.labels)
    if unknown:
      raise ValueError(f"MT.pipelines has languages py3langid does not know: {unknown}")
    self.languages = tuple(sorted(self.pipelines)) + ("en",)

  def _installed_modes(self) -> set:
    try:
      proc = subprocess.run([self.binary, "-l"], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as e:
      raise base.ToolUnavailable(f"cannot run {self.binary} -l: {e}") from e
    return set(proc.stdout.decode("utf-8", "replace").split())

  # ----------------------------------------------------------------- language identity

  def identify(self, text: str) -> Tuple[str, float]:
    """(language, confidence): a supported language, "en", or an unsupported code.

    The confidence is renormalised over the supported languages and English; below
    `min_confidence` the caller should confirm with the dictionaries.
    """
    lang, confidence, _ = self._identify(text)
    return lang, confidence

  def _identify(self, text: str) -> Tuple[str, float, List[str]]:
    """identify() plus the supported languages (and "en") most likely first."""
    merged: Dict[str, float] = {}
    for lang, p in self.identifier.rank(text):
      lang = self.language_aliases.get(lang, lang)
      merged[lang] = merged.get(lang, 0.0) + p
    ranking = sorted(merged.items(), key=lambda item: -item[1])
    supported = [(lang, p) for lang, p in ranking if lang in self.languages]
    candidates = [lang for lang, _ in supported[: self.dictionary_candidates]]
    top, top_p = ranking[0]
    if top not in self.languages and top_p >= self.unsupported_confidence:
      return top, top_p, candidates
    total = sum(p for _, p in supported) or 1.0
    lang, p = supported[0]
    return lang, p / total, candidates

  # -------------------------------------------------------------------------- apertium

  def _run(self, mode: str, text: str) -> str:
    """One apertium run (marks kept); raises _ApertiumFailed."""
    try:
      proc = subprocess.run([self.binary, mode], input=text.encode("utf-8"),
                            capture_output=True, timeout=self.timeout_s, check=False)
    except subprocess.TimeoutExpired as e:
      raise _ApertiumFailed(f"apertium {mode} timed out after {self.timeout_s:g} s") from e
    except OSError as e:
      raise _ApertiumFailed(f"apertium {mode} could not run: {e}") from e
    if proc.returncode != 0:
      err = base.one_line(proc.stderr.decode("utf-8", "replace"), 160)
      raise _ApertiumFailed(f"apertium {mode} failed (exit {proc.returncode}): {err}")
    return proc.stdout.decode("utf-8", "replace")

  def _translate_raw(self, lang: str, text: str) -> str:
    """`text` (lines) through `lang`'s pipeline, unknown-word marks kept in the output."""
    for i, mode in enumerate(self.pipelines[lang]):
      if i:
        text = _MARK_RE.sub("", text)
      text = self._run(mode, text)
    return text

  @staticmethod
  def _unknown_fraction(marked: str) -> float:
    words = len(_WORD_RE.findall(marked)) or 1
    return len(_UNKNOWN_RE.findall(marked)) / words

  def _run_lines(self, lang: str, texts: List[str]) -> List[Union[str, base.ToolError]]:
    """Marked output per text through `lang`'s pipeline ("en": the English analyser).

    One apertium run for all texts; a line "." between texts ends each sentence, so the
    tagger carries no context from one text into the next. If the output lines do not
    line up with the inputs (or the run fails), the texts are split in halves and each
    half retried, so one odd text costs a few extra runs, not one run per text.
    """
    try:
      if lang == "en":
        out = self._run(ENGLISH_ANALYSER_MODE, _BATCH_SEPARATOR.join(texts))
      else:
        out = self._translate_raw(lang, _BATCH_SEPARATOR.join(texts))
    except base.ToolError as e:
      if len(texts) == 1:
        return [e]
      out = ""
    lines = (out[:-1] if out.endswith("\n") else out).split("\n")
    if len(lines) == 2 * len(texts) - 1 and all(x.strip() == "." for x in lines[1::2]):
      return lines[::2]
    if len(texts) == 1:
      return [" ".join(lines)]
    half = len(texts) // 2
    return self._run_lines(lang, texts[:half]) + self._run_lines(lang, texts[half:])

  def _run_groups(self, groups: Mapping[Hashable, Tuple[str, List[str]]]
                  ) -> Dict[Hashable, List[Union[str, base.ToolError]]]:
    """`_run_lines(lang, texts)` for each group {key: (lang, texts)}, in parallel threads."""
    # copy_context: the runs stay inside the caller's sandbox.
    futures = {key: _RUNNERS.submit(contextvars.copy_context().run, self._run_lines, lang,
                                    texts)
               for key, (lang, texts) in groups.items()}
    return {key: f.result() for key, f in futures.items()}

  # ---------------------------------------------------------------------------- calls

  def cache_key(self, args: str, context: base.Context = None) -> Hashable:
    return clean_text(call_format.text_argument(args))

  def _prepare(self, args: str) -> Tuple[str, str]:
    raw = call_format.text_argument(args)
    if len(raw) > self.max_chars:
      raise base.ToolRefused(f"text longer than {self.max_chars} characters")
    text = clean_text(raw)
    if not text:
      raise base.ToolError("nothing to translate")
    return raw, text

  @staticmethod
  def _finish(raw: str, marked: Union[str, base.ToolError]) -> Union[str, base.ToolError]:
    if isinstance(marked, base.ToolError):
      return marked
    out = " ".join(_MARK_RE.sub("", marked).split())
    return out or base.ToolError("apertium returned no translation")

  def __call__(self, args: str, context: base.Context = None) -> str:
    result = self.call_batch([(args, context)])[0]
    if isinstance(result, base.ToolError):
      raise result
    return result

  def call_batch(
      self, calls: Sequence[Tuple[str, base.Context]]
  ) -> List[Union[str, base.ToolError]]:
    """Translates many texts with one apertium run per language involved."""
    results: List[Union[str, base.ToolError, None]] = [None] * len(calls)
    confident: Dict[str, List[Tuple[int, str, str]]] = {}
    ambiguous: List[Tuple[int, str, str, List[str]]] = []
    for i, (args, _) in enumerate(calls):
      try:
        raw, text = self._prepare(args)
      except base.ToolError as e:
        results[i] = e
        continue
      if not any(c.isalpha() for c in text):
        results[i] = raw  # numbers and punctuation need no translation
        continue
      lang, confidence, candidates = self._identify(text)
      if lang not in self.languages:
        results[i] = base.ToolError(f"language {lang!r} is not supported (supported: "
                                    f"{', '.join(self.languages)})")
      elif confidence < self.min_confidence:
        if len(text.split()) > self.dictionary_max_words:
          results[i] = base.ToolError(
              f"cannot identify the language (best guess {lang!r}, confidence "
              f"{confidence:.2f})")
        else:
          ambiguous.append((i, raw, text, candidates))
      elif lang == "en":
        results[i] = raw
      else:
        confident.setdefault(lang, []).append((i, raw, text))

    # Ambiguous texts: each candidate language's dictionaries read all texts naming it.
    checks: Dict[str, List[Tuple[int, str]]] = {}
    for n, (_, _, text, candidates) in enumerate(ambiguous):
      for lang in candidates:
        checks.setdefault(lang, []).append((n, text))
    groups: Dict[Hashable, Tuple[str, List[str]]] = {}
    for lang, items in confident.items():
      groups[("translate", lang)] = (lang, [t for _, _, t in items])
    for lang, items in checks.items():
      groups[("check", lang)] = (lang, [t for _, t in items])
    outputs = self._run_groups(groups)

    for lang, items in confident.items():
      for (i, raw, _), marked in zip(items, outputs[("translate", lang)]):
        results[i] = self._finish(raw, marked)
    marked_by = {}  # (ambiguous index, lang) -> marked output or error
    for lang, items in checks.items():
      for (n, _), marked in zip(items, outputs[("check", lang)]):
        marked_by[(n, lang)] = marked
    for n, (i, raw, _, candidates) in enumerate(ambiguous):
      best = None
      for rank, lang in enumerate(candidates):
        marked = marked_by[(n, lang)]
        if isinstance(marked, base.ToolError):
          continue
        key = (self._unknown_fraction(marked), rank)
        if best is None or key < best[0]:
          best = (key, lang, marked)
      if best is None:
        results[i] = marked_by[(n, candidates[0])]  # every run failed: report the first
      elif best[1] == "en":
        results[i] = raw
      else:
        results[i] = self._finish(raw, best[2])
    return results  # type: ignore[return-value]
