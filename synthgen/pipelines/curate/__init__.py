"""Seed curation: from raw organic sources to high-value, diverse seeds (`synthgen seeds curate`)."""
