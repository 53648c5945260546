"""Corpora, file lists, `prepare`, samplers and datasets.

Kept free of imports so `gankit prepare`'s worker processes (which import `gankit.data.prepare`) do not
load torch; import the submodules directly.
"""
