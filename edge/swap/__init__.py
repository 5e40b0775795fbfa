"""Install-time only: validate a bundle, keep versions in the model store, swap ``current`` atomically,
roll back; ``maskipy-edge bundle`` (``cli``). Nothing in the frame loop imports this package."""
