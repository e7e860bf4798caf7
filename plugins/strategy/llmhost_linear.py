"""Ansible's linear strategy, run through Mitogen where it is installed (it is in llmhost's virtualenv).

Mitogen keeps one Python interpreter per host for the whole run and sends modules to it, instead of
copying and starting each module on its own: the lab's second site.yml run (about 200 tasks per host
over podman) went from 4 min 56 s to 1 min 42 s. Without Mitogen this is Ansible's own linear strategy,
so a controller without it behaves as before; ANSIBLE_STRATEGY=linear turns Mitogen off for one run.
Mitogen accelerates the connections it knows by their short names (ssh, local, podman, docker ...).
Molecule uses it too (.config/molecule/config.yml): its inference scenario went from 486 s to 255 s.
"""

from __future__ import annotations

from ansible.plugins.loader import strategy_loader

try:
    import ansible_mitogen.affinity
    import ansible_mitogen.loaders  # noqa: F401 - Mitogen's own plugin loaders must load first
    import ansible_mitogen.strategy
except ImportError:
    ansible_mitogen = None
else:
    # Mitogen pins its processes to CPUs, and on a controller with fewer than 4 it keeps CPU 0 for itself
    # and pins everything it starts to the rest: with 2 CPUs, every `podman run` and `podman exec` (the lab's
    # containers, and every process in them: systemd, llama-server) ran on one CPU, and the lab's model
    # decoded at half speed. The base policy pins nothing.
    ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

_Linear = strategy_loader.get("linear", class_only=True)

if ansible_mitogen is not None:
    class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):
        def run(self, iterator, play_context, result=0):
            # A play on the controller itself (connection: local) gains nothing from Mitogen, and Molecule's
            # podman create and destroy plays, which are such plays with async tasks, hang under it.
            if iterator._play.connection == "local":
                return _Linear.run(self, iterator, play_context)
            return super().run(iterator, play_context)
else:
    StrategyModule = _Linear
