"""``python -m softprompt.cli``: the ``softprompt`` command."""

from softprompt.cli.app import main

if __name__ == "__main__":
    main()
