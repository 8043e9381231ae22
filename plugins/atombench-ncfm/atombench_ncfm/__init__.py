"""NCFM (CVPR 2025) as an outside atombench plug-in: the distiller ``ncfm`` (see README.md)."""
