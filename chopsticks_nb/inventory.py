"""Ansible inventories (INI or YAML) read without Ansible: their groups, and their hosts as
chopsticks_nb reaches them. ``Group.from_inventory(path, group)`` makes the tunnels; this module
is for looking at an inventory first::

    inventory = read_inventory("inventory.ini")
    inventory.groups            # ['all', 'ungrouped', 'web', 'db']
    inventory.host_names("web")  # ['web01', 'web02']
    inventory.hosts("web")[0]   # InventoryHost(name='web01', address='10.0.0.5', port=2222, ...)

What is read: groups, ``children``, group variables (``[web:vars]``, ``vars:``), host variables,
host ranges (``web[01:20]``, ``db-[a:c]``, ``[1:10:2]``), ``host:port``, the implicit ``all``
and ``ungrouped`` groups, and variable precedence as in Ansible (the host's own, over an inner
group's, over an outer group's, over ``all``'s). What is not: ``group_vars/`` and ``host_vars/``
directories, inventory directories and scripts, plugins, and Jinja templates (a connection
variable holding ``{{ }}`` is refused rather than used unevaluated).

Each host becomes an :class:`InventoryHost` from its connection variables:

==================================  ============================================================
``ansible_host``                    ``address`` (default: the inventory name)
``ansible_port``                    ``port``: a number from 1 to 65535
``ansible_user``                    ``user``
``ansible_python_interpreter``      ``python`` (``auto`` and its kinds: None, the default)
``ansible_become``                  ``become``: yes/no, true/false, on/off, 1/0 (any case)
``ansible_become_user``             ``become_user`` (None: sudo's default, root)
``ansible_become_method``           must be ``sudo`` when set (chopsticks_nb becomes via sudo)
``ansible_connection``              ``connection``: ``"ssh"`` for ``ssh``, ``paramiko``,
                                    ``smart`` (the default); ``"local"`` for ``local`` (run on
                                    this machine, not over SSH); anything else (``winrm``,
                                    ``docker``, ``kubectl``, ``network_cli``...) is refused
``ansible_ssh_private_key_file``    ``ssh_args``: ``-i`` and the key (``~`` expanded)
``ansible_ssh_common_args``         ``ssh_args``: split as a shell would (``-o ProxyJump=...``)
``ansible_ssh_extra_args``          ``ssh_args``: the same, after the common ones
``ansible_password``, ...           refused: ssh runs in batch mode and sudo with ``-n``, so no
                                    password (``ansible_ssh_pass``, ``ansible_become_password``,
                                    ``ansible_become_pass``) can be used; use a key instead
==================================  ============================================================

The older ``ansible_ssh_host``, ``ansible_ssh_port`` and ``ansible_ssh_user`` (and
``ansible_private_key_file``) are read too when the newer names are not set. Every error names
the file and, where known, the line; where Ansible quietly makes no host of a mistake
(``web[3:1]``, ``web:ssh``), this refuses it.
"""

from ._inventory import Inventory, InventoryHost, inventory_hosts, read_inventory
from .errors import InventoryError

__all__ = ["Inventory", "InventoryError", "InventoryHost", "inventory_hosts", "read_inventory"]
