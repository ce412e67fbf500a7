"""One run and its lifecycle: ``build`` assembles it, ``loop`` runs its rounds (see docs/architecture.md)."""
