# Bunny (Debian's ruby-bunny), the client under Sneakers and Hutch, against Warren: what a
# Ruby order service does with it, in Bunny's own idioms: confirm_select/wait_for_confirms,
# subscribe with manual acks, on_return, its typed channel exceptions and its automatic
# recovery after the operator closes the connection.
#   ruby interop/ruby/bunny_client.rb
# Needs AMQP_URL; MGMT_URL for the recovery story; TLS_DIR and AMQPS_PORT for amqps.
# Last line: N passed, N failed
require "bunny"
require "json"
require "net/http"
require "securerandom"
require "timeout"

URL = ENV.fetch("AMQP_URL")
RUN = SecureRandom.hex(4)
$passed = 0
$failed = 0

def story(name)
  Timeout.timeout(30) { yield }
  $passed += 1
  puts "ok   - #{name}"
rescue Exception => e # rubocop:disable Lint/RescueException -- a failed story must not stop the rest
  $failed += 1
  puts "FAIL - #{name} (#{e.class}: #{e.message})"
end

def check(ok, what)
  raise what unless ok
end

def connect(**opts)
  Bunny.new(URL, { automatically_recover: false, logger: Logger.new(nil) }.merge(opts)).tap(&:start)
end

# Waits for a value pushed by a consumer, with a bound.
def pop_within(queue, what)
  Timeout.timeout(5, RuntimeError, "#{what}: nothing within 5 s") { queue.pop }
end

def get_within(q, **opts)
  250.times do
    d, p, body = q.pop(**opts)
    return [d, p, body] if body
    sleep 0.02
  end
  raise "no message on #{q.name} within 5 s"
end

def mgmt(method, path)
  uri = URI(ENV.fetch("MGMT_URL") + path)
  req = (method == :get ? Net::HTTP::Get : Net::HTTP::Delete).new(uri)
  req.basic_auth("guest", "guest")
  res = Net::HTTP.start(uri.host, uri.port, read_timeout: 5) { |h| h.request(req) }
  res.body.to_s.empty? ? nil : JSON.parse(res.body)
end

story "a confirmed persistent order is read back with its properties" do
  conn = connect
  ch = conn.create_channel
  q = ch.queue("rb-orders-#{RUN}", durable: true)
  ch.confirm_select
  sent_at = Time.at(Time.now.to_i)
  ch.default_exchange.publish('{"order":42}', routing_key: q.name, persistent: true,
                                              content_type: "application/json", message_id: "order-42",
                                              timestamp: sent_at.to_i, priority: 3,
                                              headers: { "x-order-id" => 42, "lines" => %w[sku-1 sku-2],
                                                         "shipping" => { "express" => true } })
  check ch.wait_for_confirms, "the publish is confirmed"
  info, props, body = get_within(q, manual_ack: true)
  check body == '{"order":42}', "body #{body}"
  check props.content_type == "application/json", "content type #{props.content_type}"
  check props.delivery_mode == 2, "delivery mode #{props.delivery_mode}"
  check props.message_id == "order-42", "message id #{props.message_id}"
  check props.timestamp == sent_at, "timestamp #{props.timestamp.inspect}"
  check props.priority == 3, "priority #{props.priority}"
  check props.headers == { "x-order-id" => 42, "lines" => %w[sku-1 sku-2], "shipping" => { "express" => true } },
        "headers #{props.headers}"
  check !info.redelivered?, "not redelivered"
  ch.ack(info.delivery_tag)
  q.delete
  conn.close
end

story "a subscriber with prefetch 10 acks 100 orders in order" do
  conn = connect
  ch = conn.create_channel
  q = ch.queue("", exclusive: true)
  100.times { |i| ch.default_exchange.publish("order-#{i}", routing_key: q.name) }
  worker = conn.create_channel
  worker.prefetch(10)
  got = Queue.new
  q2 = worker.queue(q.name, passive: true)
  q2.subscribe(manual_ack: true) do |info, _props, body|
    got << body
    worker.ack(info.delivery_tag)
  end
  100.times do |i|
    b = pop_within(got, "delivery #{i}")
    check b == "order-#{i}", "delivery #{i} was #{b}"
  end
  conn.close
end

story "RPC over direct reply-to" do
  server = connect
  s = server.create_channel
  requests = s.queue("rb-prices-#{RUN}", auto_delete: true)
  requests.subscribe do |_info, props, body|
    s.default_exchange.publish("price:#{body}", routing_key: props.reply_to, correlation_id: props.correlation_id)
  end
  client = connect
  c = client.create_channel
  replies = Queue.new
  reply_to = c.queue("amq.rabbitmq.reply-to", no_declare: true)
  reply_to.subscribe(manual_ack: false) { |_info, props, body| replies << "#{props.correlation_id}=#{body}" }
  20.times do |i|
    c.default_exchange.publish("sku-#{i}", routing_key: requests.name, reply_to: "amq.rabbitmq.reply-to",
                                           correlation_id: "c#{i}")
    r = pop_within(replies, "reply #{i}")
    check r == "c#{i}=price:sku-#{i}", "reply #{r}"
  end
  client.close
  server.close
end

story "an unroutable mandatory message comes back to on_return with 312 NO_ROUTE" do
  conn = connect
  ch = conn.create_channel
  returned = Queue.new
  x = ch.direct("amq.direct", no_declare: true)
  x.on_return { |info, _props, body| returned << [info.reply_code, info.reply_text, info.routing_key, body] }
  x.publish("lost?", routing_key: "nowhere-#{RUN}", mandatory: true)
  r = pop_within(returned, "basic.return")
  check r == [312, "NO_ROUTE", "nowhere-#{RUN}", "lost?"], "returned #{r}"
  conn.close
end

story "channel errors raise Bunny's exceptions with RabbitMQ's texts and leave the connection open" do
  conn = connect
  missing = "rb-missing-#{RUN}"
  begin
    conn.create_channel.queue(missing, passive: true)
    raise "declared a missing queue"
  rescue Bunny::NotFound => e
    check e.message.include?("NOT_FOUND - no queue '#{missing}' in vhost '/'"), e.message
    check e.channel_close.reply_code == 404, "code #{e.channel_close.reply_code}"
  end
  q = "rb-durable-#{RUN}"
  ch = conn.create_channel
  ch.queue(q, durable: true)
  begin
    conn.create_channel.queue(q, durable: false)
    raise "redeclared with another durability"
  rescue Bunny::PreconditionFailed => e
    check e.message.include?("PRECONDITION_FAILED - inequivalent arg 'durable' for queue '#{q}' in vhost '/': " \
                             "received 'false' but current is 'true'"), e.message
  end
  other = connect
  mine = conn.create_channel.queue("rb-exclusive-#{RUN}", exclusive: true)
  begin
    other.create_channel.queue(mine.name, exclusive: true)
    raise "took another connection's exclusive queue"
  rescue Bunny::ResourceLocked => e
    check e.message.include?("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '#{mine.name}'"), e.message
  end
  other.close
  check conn.open?, "the connection survived three channel errors"
  conn.create_channel.queue_delete(q)
  conn.close
end

story "a rejected payment is dead-lettered with an x-death header" do
  conn = connect
  ch = conn.create_channel
  dlx = ch.fanout("rb-dlx-#{RUN}", auto_delete: true)
  parked = ch.queue("", exclusive: true).bind(dlx)
  work = ch.queue("rb-payments-#{RUN}", exclusive: true, arguments: { "x-dead-letter-exchange" => dlx.name })
  ch.default_exchange.publish("payment-7", routing_key: work.name)
  info, = get_within(work, manual_ack: true)
  ch.reject(info.delivery_tag, false)
  _, props, body = get_within(parked)
  deaths = props.headers["x-death"]
  check body == "payment-7", "body #{body}"
  check deaths.size == 1, "x-death #{deaths}"
  d = deaths[0]
  check d["reason"] == "rejected" && d["queue"] == work.name && d["count"] == 1 &&
        d["routing-keys"] == [work.name] && d["exchange"] == "", "x-death #{d}"
  conn.close
end

story "deleting a consumed queue calls the consumer's on_cancellation" do
  conn = connect
  ch = conn.create_channel
  q = ch.queue("rb-cancelled-#{RUN}")
  cancelled = Queue.new
  consumer = Bunny::Consumer.new(ch, q, "stock-worker", false)
  consumer.on_cancellation { |basic_cancel| cancelled << basic_cancel.consumer_tag }
  consumer.on_delivery { |_i, _p, _b| nil }
  q.subscribe_with(consumer)
  conn.create_channel.queue_delete(q.name)
  tag = pop_within(cancelled, "basic.cancel")
  check tag == "stock-worker", "cancelled #{tag}"
  check ch.open?, "the consumer's channel stays open"
  conn.close
end

story "a full reject-publish queue nacks the publish" do
  conn = connect
  ch = conn.create_channel
  q = ch.queue("rb-stock-#{RUN}", exclusive: true, arguments: { "x-max-length" => 1, "x-overflow" => "reject-publish" })
  ch.confirm_select
  ch.default_exchange.publish("first", routing_key: q.name)
  check ch.wait_for_confirms, "the first is confirmed"
  ch.default_exchange.publish("second", routing_key: q.name)
  check !ch.wait_for_confirms, "the second is nacked"
  check ch.nacked_set.to_a == [2], "nacked #{ch.nacked_set.to_a}"
  check q.message_count == 1, "#{q.message_count} queued"
  conn.close
end

story "a transaction rolls back and commits" do
  conn = connect
  ch = conn.create_channel
  q = ch.queue("", exclusive: true)
  ch.tx_select
  ch.default_exchange.publish("rolled back", routing_key: q.name)
  ch.tx_rollback
  ch.default_exchange.publish("committed", routing_key: q.name)
  ch.tx_commit
  _, _, body = q.pop
  check body == "committed", "got #{body}"
  check q.message_count.zero?, "nothing else"
  conn.close
end

if ENV["MGMT_URL"]
  story "automatic recovery brings the queue and its subscriber back after the operator closes the connection" do
    name = "rb-recovering-#{RUN}"
    conn = Bunny.new(URL, connection_name: name, network_recovery_interval: 0.5, logger: Logger.new(nil))
    recovered = Queue.new
    conn.after_recovery_completed { recovered << true }
    conn.start
    ch = conn.create_channel
    q = ch.queue("rb-stock-updates-#{RUN}", auto_delete: false)
    got = Queue.new
    q.subscribe(manual_ack: true) do |info, _props, body|
      ch.ack(info.delivery_tag)
      got << body
    end
    ch.default_exchange.publish("before", routing_key: q.name)
    check pop_within(got, "before") == "before", "before"
    ch.queue(q.name, passive: true) # a round trip on the channel: the ack above is in
    mine = []
    Timeout.timeout(10) do
      while mine.empty?
        mine = mgmt(:get, "/api/connections").select { |c| c["user_provided_name"] == name }
        sleep 0.2 if mine.empty?
      end
    end
    mgmt(:delete, "/api/connections/" + URI.encode_www_form_component(mine[0]["name"]).gsub("+", "%20"))
    Timeout.timeout(10, RuntimeError, "no recovery within 10 s") { recovered.pop }
    ch.default_exchange.publish("after", routing_key: q.name)
    check pop_within(got, "after") == "after", "after"
    ch.queue_delete(q.name)
    conn.close
  end
end

if ENV["TLS_DIR"] && ENV["AMQPS_PORT"]
  story "amqps with the test CA: publish and get over TLS" do
    conn = Bunny.new(host: "localhost", port: ENV["AMQPS_PORT"].to_i, tls: true,
                     tls_ca_certificates: ["#{ENV['TLS_DIR']}/ca.pem"], verify_peer: true,
                     automatically_recover: false, logger: Logger.new(nil))
    conn.start
    ch = conn.create_channel
    q = ch.queue("", exclusive: true)
    ch.default_exchange.publish("over tls", routing_key: q.name)
    _, _, body = get_within(q)
    check body == "over tls", "body #{body}"
    conn.close
  end
end

puts "#{$passed} passed, #{$failed} failed"
exit($failed.zero? ? 0 : 1)
