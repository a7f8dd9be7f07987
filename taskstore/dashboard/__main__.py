"""`python -m taskstore.dashboard`: the same as `taskstore dashboard`."""

from taskstore.dashboard.command import cli_command

if __name__ == "__main__":
    cli_command(prog_name="taskstore dashboard")
