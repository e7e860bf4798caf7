# The two commands of the README, and their helpers. Everything they need is installed by scripts/.
.PHONY: lab lab-down test lint pytest molecule venv

lab:        ## Bring the lab up and converge site.yml on it (the main job)
	bash scripts/lab.sh up

lab-down:   ## Remove the lab containers
	bash scripts/lab.sh down

test:       ## The whole suite: lint, pytest, every Molecule scenario
	bash scripts/test.sh

lint pytest molecule:
	LLMHOST_STAGES=$@ bash scripts/test.sh

venv:
	bash scripts/venv.sh
