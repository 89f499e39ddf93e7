"""A Stripe-compatible sandbox: seeded account histories, their ground truth, and an HTTP server."""
