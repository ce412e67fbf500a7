"""What everything else stands on (beside scyc.config, the typed config): the registries, config keys and overrides, file and RNG utilities."""
