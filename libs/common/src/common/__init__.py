"""Cross-cutting platform shared by every service: written once, imported everywhere."""
