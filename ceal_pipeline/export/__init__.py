"""The vendor file drop (outbox) and label deliveries (inbox); no Dagster, no DuckDB."""

from ceal_pipeline.export.file_drop import (
    CorruptExport,
    ExportConflict,
    ExportedFrame,
    VendorExport,
    export_folder,
    list_exports,
    read_vendor_export,
    write_vendor_export,
)
from ceal_pipeline.export.vendor_inbox import (
    LabelDelivery,
    RejectedDelivery,
    check_against_export,
    read_label_deliveries,
    simulate_vendor,
    write_label_delivery,
)

__all__ = [
    "CorruptExport",
    "ExportConflict",
    "ExportedFrame",
    "LabelDelivery",
    "RejectedDelivery",
    "VendorExport",
    "check_against_export",
    "export_folder",
    "list_exports",
    "read_label_deliveries",
    "read_vendor_export",
    "simulate_vendor",
    "write_label_delivery",
    "write_vendor_export",
]
