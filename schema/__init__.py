"""JSON Schemas (draft 2020-12), one per kind; shipped as package data of gate_runner.schema."""
