from llmhost.main import cli

cli()
