"""A fake Kubernetes API server: canned lists and watch bodies over real HTTP on loopback."""
