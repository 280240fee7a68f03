"""Source plugins: one module per source type, holding its config model and naming its implementation."""
