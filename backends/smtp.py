"""`Notifier` over SMTP (smtplib): plain, or STARTTLS with a login.

The password is read from a file named in the local config when a mail is
sent, so it is in no config value, no argv, no log and never in git.
"""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from backends.base import BackendError, secret_line
from backends.notify_protocols import Mail, MailRefused

TIMEOUT = 30.0


class SmtpNotifier:
    def __init__(self, host: str, port: int, starttls: bool = False, user: str = "",
                 password_file: str = "", timeout: float = TIMEOUT) -> None:
        self.host, self.port, self.starttls = host, port, starttls
        self.user, self.password_file, self.timeout = user, password_file, timeout

    def send(self, mail: Mail) -> tuple[str, ...]:
        """Send; returns the recipients the server refused while it took the
        mail for the others (the mail counts as sent: no one gets it twice)."""
        message = EmailMessage()
        message["From"] = mail.sender
        message["To"] = ", ".join(mail.recipients)
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = mail.message_id
        for name, value in mail.headers.items():
            message[name] = value
        message.set_content(mail.body)
        where = f"{self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as server:
                if self.starttls:
                    server.starttls(context=ssl.create_default_context())
                if self.user:
                    server.login(self.user, self._password())
                refused = server.send_message(message, mail.sender, list(mail.recipients))
        except smtplib.SMTPSenderRefused as exc:
            raise BackendError(f"the mail server {where} refused the sender {mail.sender}: {exc.smtp_code} "
                               f"{_text(exc.smtp_error)}", "set `sender` in [smtp] of the local config to an "
                               "address the server accepts; the mail waits in the outbox") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailRefused(f"the mail server {where} refused every recipient of {mail.subject!r} "
                              f"({', '.join(sorted(exc.recipients))})",
                              "check those addresses in the policy; this mail is kept aside, the others go on") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise BackendError(f"the mail server {where} refused the login of {self.user}",
                               "check `user` and the password file in [smtp]; the mail waits in the outbox") from exc
        except smtplib.SMTPDataError as exc:
            if exc.smtp_code >= 500:  # refused for what it is: sending it again cannot help
                raise MailRefused(f"the mail server {where} refused {mail.subject!r}: {exc.smtp_code} "
                                  f"{_text(exc.smtp_error)}", "this mail is kept aside, the others go on") from exc
            raise BackendError(f"cannot send mail through {where}: {exc}",
                               "the mail waits in the outbox and is sent again by the next sluice command "
                               "that writes, or by `sluice run`") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise BackendError(f"cannot send mail through {where}: {exc}",
                               "the mail waits in the outbox and is sent again by the next sluice command "
                               "that writes, or by `sluice run`") from exc
        return tuple(sorted(refused))

    def _password(self) -> str:
        try:
            return secret_line(self.password_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise BackendError(f"cannot read the SMTP password file {self.password_file}: {exc.strerror}",
                               "set password_file in [smtp] to a readable file holding the password") from exc


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
