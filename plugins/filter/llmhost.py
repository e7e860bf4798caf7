"""Ansible filters over llmhost's knowledge base, so roles choose from the same data as the CLI.

    {{ 'tuning' | llmhost_data }}                          the parsed data file
    {{ 'debian-12' | llmhost_recommend(arch='hopper') }}   driver branch, modules, packages, repository
    {{ '535.261.03' | llmhost_newest_cuda }}               newest CUDA (MAJOR.MINOR) this driver runs
    {{ '12.4' | llmhost_cuda_min_driver }}                 minimum driver for a toolkit
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    from llmhost import compat, knowledge
    from llmhost.errors import LlmhostError
    from llmhost.versions import parse_cuda, parse_driver
except ImportError as exc:  # the controller's Python must have llmhost installed (scripts/venv.sh)
    raise AnsibleFilterError(f"llmhost is not importable by Ansible's Python: {exc}; run scripts/venv.sh") from exc


def _guard(func):
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LlmhostError as exc:
            raise AnsibleFilterError(str(exc)) from None
    wrapper.__name__ = func.__name__
    return wrapper


@_guard
def llmhost_data(name):
    return knowledge.load(str(name))


@_guard
def llmhost_recommend(os_id, arch=None, modules=None):
    return compat.recommend(arch or None, str(os_id), modules or None)


@_guard
def llmhost_newest_cuda(driver):
    cuda = knowledge.newest_cuda_for_driver(parse_driver(str(driver)))
    return cuda.short if cuda else None


@_guard
def llmhost_cuda_min_driver(cuda):
    return str(knowledge.cuda_min_driver(parse_cuda(str(cuda))))


class FilterModule:
    def filters(self):
        return {f.__name__: f for f in (llmhost_data, llmhost_recommend, llmhost_newest_cuda, llmhost_cuda_min_driver)}
