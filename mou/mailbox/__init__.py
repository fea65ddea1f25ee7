"""The Secretariat's mailbox as an intake channel: messages read over IMAP, recorded first,
then their workbooks taken through the same intake as the drop folder and the portal, mail
that is not a return answered once (or, if automatic, not at all), bounces marked."""
