"""Reading gguf files: a faster `gguf.GGUFReader` and metadata access, shared by the gguf
checkpoint importer (`toolformer_jax.checkpoints.gguf`) and the gguf vocabulary
(`toolformer_jax.vocab.GgufBpeVocabulary`).

Needs only the `gguf` package and numpy (no JAX, no TensorFlow).
"""
from __future__ import annotations

from typing import Any

import gguf
import numpy as np


class GgufFormatError(ValueError):
  """A gguf file that cannot be read, or is not a supported checkpoint or vocabulary."""


class _PlainViewReader(gguf.GGUFReader):
  """A `gguf.GGUFReader` whose file buffer is a plain ndarray view of the memory map.

  The reader parses metadata through many small slices of `self.data`; slicing an
  `np.memmap` subclass is ~4x slower than slicing a plain view of the same mapped buffer
  (2.7 s vs 0.7 s for SmolLM2's 49k-token vocabulary). Nothing else changes.
  """

  @property
  def data(self) -> np.ndarray:
    return self._plain_data

  @data.setter
  def data(self, value) -> None:
    self._plain_data = np.asarray(value)  # drops the memmap subclass, keeps the mapping


def open_reader(path: str) -> gguf.GGUFReader:
  """Opens a gguf file for reading (faster metadata parsing than `gguf.GGUFReader`)."""
  try:
    return _PlainViewReader(path, "r")
  except (ValueError, IndexError, KeyError, TypeError) as e:
    raise GgufFormatError(f"{path}: not a readable gguf file: {e}") from e


_MISSING = object()


def field_value(reader: gguf.GGUFReader, key: str, default: Any = _MISSING) -> Any:
  """A metadata value as a Python object (arrays of strings as a list).

  Without `default`, a missing key raises KeyError.
  """
  if key not in reader.fields:
    if default is _MISSING:
      raise KeyError(key)
    return default
  return reader.fields[key].contents()
