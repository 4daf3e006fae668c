"""``python -m hybridroute`` runs the CLI."""

from hybridroute.cli import main

if __name__ == "__main__":
    main()
