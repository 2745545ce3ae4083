"""``vbprune push``: upload a pruned model folder with its model card to the Hub."""

from __future__ import annotations

import argparse

HELP = "upload a pruned model folder to the Hub"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vbprune push``."""
    parser.add_argument("directory", help="a `vbprune prune` output or a saved model folder")
    parser.add_argument("--repo-id", required=True, help="user/name on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--token", help="Hub token (default: the logged-in one)")
    parser.add_argument("--revision", help="branch to push to")


def run(args: argparse.Namespace) -> int:
    """Upload ``directory`` to ``--repo-id``; print the commit URL."""
    from ..io.hub import push_folder

    url = push_folder(
        args.directory, args.repo_id, private=args.private, token=args.token,
        revision=args.revision,
    )  # fmt: skip
    print(f"pushed {args.directory} to {args.repo_id}: {url}")
    return 0
