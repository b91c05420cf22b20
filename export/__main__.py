from export.cli import export

export(prog_name="python -m export")
