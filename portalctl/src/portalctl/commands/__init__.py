"""One module per command group; `portalctl.app` imports each only when it runs."""
