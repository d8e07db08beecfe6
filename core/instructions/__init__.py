"""Instruction records: task templates, dataset adapters, splits, filters, optional QA generation."""
