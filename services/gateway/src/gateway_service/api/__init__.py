"""HTTP routers: thin, they translate HTTP to use cases and back."""
