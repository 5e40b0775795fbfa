"""maskipy.trainer: train the mask classifier on face crops made exactly as the edge makes them."""
