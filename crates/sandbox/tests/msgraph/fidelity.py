"""Drives the sandbox's Microsoft Graph with Microsoft's own Graph SDK for Python (msgraph-sdk),
as a new user would: an app-only token from MSAL, then the SDK's typed request builders with
their default middleware (retry, redirect, telemetry) over HTTPS.

Usage: python fidelity.py CONFIG.json  (written by tests/msgraph_fidelity.rs)
Prints one line per step and exits non-zero on the first failure.
"""
import asyncio
import base64
import json
import sys

import httpx
import msal
from kiota_abstractions.authentication import (AccessTokenProvider, AllowedHostsValidator,
                                               BaseBearerTokenAuthenticationProvider)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import \
    MessagesRequestBuilder
from msgraph.generated.users.item.messages.item.move.move_post_request_body import \
    MovePostRequestBody
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import \
    SendMailPostRequestBody
from msgraph_core import GraphClientFactory

cfg = json.load(open(sys.argv[1]))
ca = cfg["ca_file"]
upn = cfg["mailbox"]


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


class MsalTokens(AccessTokenProvider):
    """App-only tokens from MSAL (client credentials with the daemon app's secret)."""

    def __init__(self):
        self.app = msal.ConfidentialClientApplication(
            cfg["daemon_id"], client_credential=cfg["daemon_secret"],
            authority=cfg["authority"], instance_discovery=False, verify=ca)

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        r = self.app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
        if "access_token" not in r:
            raise RuntimeError("MSAL: %s" % r)
        return r["access_token"]

    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator([cfg["graph_host"]])


def control(path, body=None):
    """The sandbox's control API (test set-up only; everything under test goes through the SDK)."""
    with httpx.Client(verify=ca) as c:
        r = c.post(cfg["control_url"] + path, json=body) if body is not None \
            else c.get(cfg["control_url"] + path)
        r.raise_for_status()
        return r.json()


async def main():
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(verify=ca))
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(MsalTokens()), client=http)
    adapter.base_url = cfg["graph_root"]
    graph = GraphServiceClient(request_adapter=adapter)
    user = graph.users.by_user_id(upn)
    inbox = user.mail_folders.by_mail_folder_id("inbox")

    # 1. Page the inbox, three at a time, following @odata.nextLink with the typed builder.
    query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
        top=3, select=["id", "subject", "hasAttachments", "conversationIndex"])
    config = MessagesRequestBuilder.MessagesRequestBuilderGetRequestConfiguration(
        query_parameters=query)
    page = await inbox.messages.get(request_configuration=config)
    pages, listed = 1, list(page.value)
    check(page.odata_next_link and page.odata_next_link.startswith(cfg["graph_root"]),
          "first page links on over https to the served root: %s" % page.odata_next_link)
    while page.odata_next_link:
        page = await inbox.messages.with_url(page.odata_next_link).get()
        pages += 1
        listed.extend(page.value)
    check(pages > 1 and len(listed) == len({m.id for m in listed}),
          "paged %d messages over %d pages, none twice" % (len(listed), pages))

    # 2. Two delta rounds: everything, then only what arrived in between.
    async def delta_round(link=None):
        builder = inbox.messages.delta if link is None else inbox.messages.delta.with_url(link)
        got, resp = [], await builder.get()
        while True:
            got.extend(resp.value)
            if resp.odata_next_link:
                resp = await inbox.messages.delta.with_url(resp.odata_next_link).get()
            else:
                return got, resp.odata_delta_link

    first, delta_link = await delta_round()
    check(len(first) >= len(listed) and delta_link, "delta round 1: %d messages" % len(first))
    delivered = control("/mail/deliver", {
        "to": upn, "from": "dana@northwind.test", "from_name": "Dana Ortiz",
        "subject": "Printer on fire (SDK delta)", "body_html": "<p>Please help.</p>",
        "attachments": [{"name": "photo.txt", "content_type": "text/plain",
                         "content_base64": base64.b64encode(b"smoke").decode(),
                         "inline": False}]})
    second, delta_link = await delta_round(delta_link)
    subjects = [m.subject for m in second]
    check(subjects == ["Printer on fire (SDK delta)"] and delta_link,
          "delta round 2: only the new message (%s)" % subjects)
    new_id = second[0].id

    # 3. Attachments through the typed builder, FileAttachment with its bytes.
    atts = await user.messages.by_message_id(new_id).attachments.get()
    files = [a for a in atts.value if isinstance(a, FileAttachment)]
    check(len(files) == 1 and files[0].name == "photo.txt" and files[0].content_bytes == b"smoke",
          "attachment read as FileAttachment with its bytes")

    # 4. Move it to Deleted Items (the SDK sends {"DestinationId": …}).
    moved = await user.messages.by_message_id(new_id).move.post(
        MovePostRequestBody(destination_id="deleteditems"))
    check(moved is not None and moved.id and moved.parent_folder_id,
          "moved to deleteditems: parentFolderId %s" % (moved and moved.parent_folder_id))
    deleted = await user.mail_folders.by_mail_folder_id("deleteditems").messages.get()
    check(any(m.subject == "Printer on fire (SDK delta)" for m in deleted.value),
          "the moved message is listed in Deleted Items")

    # 5. Send mail (the SDK sends {"Message": …, "SaveToSentItems": …}).
    message = Message(
        subject="Re: Printer on fire",
        body=ItemBody(content_type=BodyType.Html, content="<p>On our way.</p>"),
        to_recipients=[Recipient(email_address=EmailAddress(address="dana@northwind.test"))])
    await user.send_mail.post(SendMailPostRequestBody(message=message, save_to_sent_items=True))
    sent = control("/mailboxes/%s/sent" % upn)
    check(any(m.get("subject") == "Re: Printer on fire" for m in sent),
          "sendMail delivered and saved to Sent Items")
    print("delivered id", delivered.get("id", "?"))
    print("ALL OK")


asyncio.run(main())
