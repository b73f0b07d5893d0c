from claritycore.cli import app

app()
