"""Adapters from real public dataset formats to stylerec's schemas.

Each adapter maps its dataset's columns onto :mod:`data.schemas` and documents
the choices it makes (which event type a rating is, how ids are spelled), so
that the rest of stylerec never sees a dataset-specific column name.
"""
