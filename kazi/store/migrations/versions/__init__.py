"""One module per schema version, in the order their ``down_revision`` chain gives."""
