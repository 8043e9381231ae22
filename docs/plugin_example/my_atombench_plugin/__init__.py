"""An example atombench plug-in package: a distiller, a model family and a dataset (see CONTRIBUTING.md)."""
