"""``analyzer web-password``: let a user open the web page from other machines (``web.users`` in the config)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from analyzer.commands.arguments import command_parser
from analyzer.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer web-password``."""
    parser = command_parser(
        subparsers,
        "web-password",
        "Set a web page user's password in the config (stored as a salted scrypt hash); needed when web.host is "
        "not 127.0.0.1.",
        [
            "analyzer web-password -c configs/store-entrance.yaml --user manager",
            "printf '%s\\n' \"$PASSWORD\" | analyzer web-password -c site.yaml --user manager --password-stdin",
        ],
    )
    parser.add_argument("-c", "--config", type=Path, required=True, help="the config file the analyzer runs with")
    parser.add_argument("--user", required=True, help="the name to log in with (letters, digits, - and _)")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin (scripts)"
    )
    parser.set_defaults(handler=run)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ; nothing was changed")
    return first


def run(args: argparse.Namespace) -> int:
    """Hash the password and write it under ``web.users`` (the file's comments and layout kept)."""
    from analyzer.config import load_config
    from analyzer.outputs.web.access import MIN_PASSWORD_LENGTH, hash_password
    from analyzer.service.config_file import ConfigFile

    if not args.user.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"--user '{args.user}': use letters, digits, - and _")
    load_config(args.config)  # a broken config is named as the loader names it, before any password is asked
    password = _password(args.password_stdin)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"the password is {len(password)} characters; give at least {MIN_PASSWORD_LENGTH}")
    ConfigFile(args.config).set_user(args.user, hash_password(password))
    print(f"{args.config}: web.users.{args.user} set; a running analyzer takes it at its next start")
    return 0
