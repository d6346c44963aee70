"""Publication: release tags (pure), the registry client, push/verify/promote and signing."""
