"""Data curation: filters that choose which samples a stage trains on (rejection sampling for S3 and GRPO)."""

from valley3.data.curation.rejection import DROP_REASONS, Band, raw_records, rejection_stats, with_meta, write_kept

__all__ = ["DROP_REASONS", "Band", "raw_records", "rejection_stats", "with_meta", "write_kept"]
