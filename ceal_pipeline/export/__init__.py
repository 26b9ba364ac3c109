"""The vendor round trip: the file drop (outbox) with the files a vendor labels from,
and label deliveries (inbox) read back as boxes; no Dagster. ``label_ingest`` stores
deliveries in the history (docs/VENDOR.md: how a vendor's API client plugs in)."""

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
from ceal_pipeline.export.openlabel import MalformedDelivery
from ceal_pipeline.export.sensor_uris import SensorUriRule, UnmappablePath
from ceal_pipeline.export.vendor_boxes import InvalidDeliveredBoxes
from ceal_pipeline.export.vendor_formats import export_files
from ceal_pipeline.export.vendor_inbox import (
    LabelDelivery,
    RejectedDelivery,
    delivery_folder,
    read_delivery,
    read_label_deliveries,
    write_label_delivery,
)
from ceal_pipeline.export.vendor_tasks import FrameTask, PreLabels, frame_tasks

__all__ = [
    "CorruptExport",
    "ExportConflict",
    "ExportedFrame",
    "FrameTask",
    "InvalidDeliveredBoxes",
    "LabelDelivery",
    "MalformedDelivery",
    "PreLabels",
    "RejectedDelivery",
    "SensorUriRule",
    "UnmappablePath",
    "VendorExport",
    "delivery_folder",
    "export_files",
    "export_folder",
    "frame_tasks",
    "list_exports",
    "read_delivery",
    "read_label_deliveries",
    "read_vendor_export",
    "write_label_delivery",
    "write_vendor_export",
]
