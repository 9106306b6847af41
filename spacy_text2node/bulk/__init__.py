"""Bulk linking of documents: streaming readers and writers, the local
(multiprocessing) runner with resume and an errors file, the Spark backend, and
the default clinical pipeline (mentions + linker).

Spark is imported lazily: `from spacy_text2node.bulk.spark import link_spark_dataframe`.
"""

from .clinical import NounChunkMentions, build_clinical_pipeline, taxonomy_patterns
from .readers import InputRecord, check_text, read_records
from .records import doc_to_record, span_to_record
from .runner import BulkStats, link_documents, load_pipeline, local_processor, run_bulk
from .writers import read_output


def link_spark_dataframe(*args, **kwargs):
    """See `spacy_text2node.bulk.spark.link_spark_dataframe` (imported on first use)."""
    from .spark import link_spark_dataframe as _f

    return _f(*args, **kwargs)


__all__ = [
    "BulkStats",
    "InputRecord",
    "NounChunkMentions",
    "build_clinical_pipeline",
    "check_text",
    "doc_to_record",
    "link_documents",
    "link_spark_dataframe",
    "load_pipeline",
    "local_processor",
    "read_output",
    "read_records",
    "run_bulk",
    "span_to_record",
    "taxonomy_patterns",
]
