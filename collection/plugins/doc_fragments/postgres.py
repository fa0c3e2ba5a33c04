# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The connection options the PostgreSQL modules of the collection share (module_utils
pg_connection.postgres_common_argument_spec() is the matching argument spec). The names are
community.postgresql's; the modules' earlier names stay as aliases."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description: Host name or address, or a Unix socket directory.
    type: str
    default: 127.0.0.1
    aliases: [host]
  login_port:
    description: Port.
    type: int
    default: 5432
    aliases: [port]
  login_db:
    description: Database to connect to.
    type: str
    required: true
    aliases: [database, db]
  login_password:
    description: Password of O(login_user). Keep it in a vault.
    type: str
    aliases: [password]
  ssl_mode:
    description:
      - libpq's C(sslmode). V(verify-full) checks the server's certificate against O(ca_cert) and
        that it names O(login_host); V(verify-ca) checks the certificate only. A certificate that
        fails the check fails the connection.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: CA certificate(s) (PEM) that signed the server's certificate (libpq's C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  ssl_cert:
    description: Client certificate (PEM) for servers that ask for one (libpq's C(sslcert)).
    type: path
  ssl_key:
    description: Private key of O(ssl_cert) (libpq's C(sslkey)).
    type: path
  connect_params:
    description:
      - Further libpq connection keywords, for example C(target_session_attrs) or C(keepalives).
      - Not the ones the module sets itself, which make it fail if given here; C(host), C(port),
        C(dbname), C(user), C(password), the C(ssl*) files and mode, C(application_name),
        C(options), C(connect_timeout).
    type: dict
    default: {}
"""
