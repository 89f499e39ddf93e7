"""nrr-sync: exact MRR, movements, NRR and GRR from Stripe, in a DuckDB file you own."""

__version__ = "0.1.0"

# The Stripe API version every object is fetched in. stripe-python 16.x pins it; we
# record it with each run so the landing data says which shapes it holds.
STRIPE_API_VERSION = "2026-10-28.endive"
