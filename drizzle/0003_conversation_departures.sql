CREATE TABLE "conversation_departures" (
	"conversation_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"last_seq" bigint NOT NULL,
	"members_version" bigint NOT NULL,
	"left_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "conversation_departures_conversation_id_user_id_pk" PRIMARY KEY("conversation_id","user_id")
);
--> statement-breakpoint
ALTER TABLE "conversation_departures" ADD CONSTRAINT "conversation_departures_conversation_id_conversations_id_fk" FOREIGN KEY ("conversation_id") REFERENCES "public"."conversations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "conversation_departures" ADD CONSTRAINT "conversation_departures_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;