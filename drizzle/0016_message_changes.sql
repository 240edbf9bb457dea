CREATE TABLE "message_changes" (
	"conversation_id" uuid NOT NULL,
	"message_id" uuid NOT NULL,
	"change_seq" bigint NOT NULL,
	CONSTRAINT "message_changes_conversation_id_message_id_pk" PRIMARY KEY("conversation_id","message_id")
);
--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "change_seq" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "message_changes" ADD CONSTRAINT "message_changes_message_fk" FOREIGN KEY ("conversation_id","message_id") REFERENCES "public"."messages"("conversation_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "message_changes_seq_key" ON "message_changes" USING btree ("conversation_id","change_seq");