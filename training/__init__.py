"""Training and evaluation tools for pano_perception's models (imports the package; the package never imports this)."""
